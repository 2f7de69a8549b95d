"""adapter-ALBERT training on CPU: multi-task pre-training and compression (pruning, AF8) of the shared backbone,
then per-task adapters + exit heads with the backbone frozen (reusing compressed_training's loop and evaluation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from edgebert.frontend.models.compressed_training import (
    ExitReport,
    TrainSettings,
    evaluate_exits,
    make_optimizer,
    record_activation_ranges,
    train,
    train_step,
)
from edgebert.frontend.models.multitask_albert import MultiTaskAlbert
from edgebert.frontend.models.pruning import Pruner
from edgebert.frontend.models.synthetic_tasks import TaskData
from edgebert.isa.progress import Progress, progress_or_silent

log = logging.getLogger(__name__)


@dataclass
class MultiTaskRecipe:
    """The whole recipe: which tasks pre-train the backbone, how it is compressed, how adapters are trained."""

    pretrain_tasks: list[str] | None = None  # None: every task
    pretrain: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=6))
    prune_method: str = "none"  # "none", "magnitude" or "movement" (the backbone only)
    sparsity_targets: dict[str, float] = field(default_factory=lambda: {"encoder": 0.5, "embedding": 0.6})
    prune: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=3, lr=1e-3))
    af8: bool = False  # AF8 weights everywhere (backbone QAT fine-tune, adapters / heads trained with fake quant)
    af8_activations: bool = False  # then AF8 activations at every matmul input (biases calibrated on all tasks)
    af8_attention: bool = False  # with af8_activations: the attention's q, k, v and probabilities too
    qat: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=2, lr=5e-4))
    adapters: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=6, lr=3e-3))
    heads_only_baseline: bool = False  # first train heads alone on the frozen backbone (no adapters) and evaluate


def pretrain_backbone(
    mt: MultiTaskAlbert,
    datasets: dict[str, TaskData],
    settings: TrainSettings,
    pruner: Pruner | None = None,
    progress: Progress | None = None,
    phase: str = "pre-train",
) -> list[float]:
    """Train backbone + each task's exit heads jointly on mixed batches of `datasets` (adapters bypassed).

    Batches hold one task each, shuffled across tasks; the loss is compressed_training.joint_exit_loss. With a
    pruner the backbone masks ramp to their targets over 2/3 of the run (as compressed_training.train). Mean loss/epoch.
    `progress`: a bar over the batches and a note per epoch (loss, last exit's accuracy), labelled `phase`.
    """
    say = progress_or_silent(progress)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    mt.set_use_adapters(False)
    mt.freeze_backbone(False)
    models = {t: mt.task(t) for t in datasets}
    params = {id(p): p for m in models.values() for n, p in m.named_parameters() if not n.startswith("adapters.")}
    trainable = [p for p in params.values() if p.requires_grad]
    tensors = {
        t: tuple(torch.from_numpy(a) for a in (d.input_ids, d.attention_mask, d.labels)) for t, d in datasets.items()
    }
    plan = [(t, k) for t, d in datasets.items() for k in range(-(-len(d) // settings.batch_size))]
    total = settings.epochs * len(plan)
    opt, sched = make_optimizer(trainable, settings, total)
    ramp_steps = max(1, (2 * total) // 3)
    losses, step = [], 0
    for m in models.values():
        m.train()
    bar = say.task(f"[{phase}] epoch 1/{settings.epochs}", total=total)
    for epoch in range(settings.epochs):
        orders = {t: rng.permutation(len(d)) for t, d in datasets.items()}
        total_loss, count, correct = 0.0, 0, []
        for j in rng.permutation(len(plan)):
            task, k = plan[j]
            idx = orders[task][k * settings.batch_size : (k + 1) * settings.batch_size]
            ids, mask, labels = tensors[task]
            loss = train_step(models[task], (ids[idx], mask[idx], labels[idx]), settings, opt, sched, pruner,
                              (min(step, ramp_steps), ramp_steps), correct)
            total_loss += loss * len(idx)
            count += len(idx)
            step += 1
            bar.advance(description=f"[{phase}] epoch {epoch + 1}/{settings.epochs}, loss {total_loss / count:.4f}")
        losses.append(total_loss / count)
        log.info("pre-train epoch %d: loss %.4f", epoch + 1, losses[-1])
        say.note(f"[{phase}] epoch {epoch + 1}/{settings.epochs}: loss {losses[-1]:.4f}, accuracy "
                 f"{100 * sum(correct) / count:.1f} % (last exit, training batches, all tasks)")
    bar.close()
    if pruner is not None:
        pruner.apply(1.0)
    for m in mt.tasks.values():
        m.eval()
    return losses


def make_backbone_pruner(mt: MultiTaskAlbert, method: str, targets: dict[str, float]) -> Pruner:
    """A Pruner over the backbone groups ("encoder", "embedding"); its masks land in the shared prune_masks."""
    bad = set(targets) - {"encoder", "embedding"}
    if bad:
        raise ValueError(f"only the backbone groups encoder/embedding are pruned, not {sorted(bad)}")
    pruner = Pruner(mt.backbone, method, targets)
    mt.set_compression(pruning_method=method, sparsity_targets=dict(targets))
    return pruner


def train_task_adapters(
    mt: MultiTaskAlbert,
    task: str,
    data: TaskData,
    settings: TrainSettings,
    seed: int | None = None,
    use_adapters: bool = True,
    progress: Progress | None = None,
) -> list[float]:
    """Fresh adapters and exit heads for `task`, trained with the backbone frozen (compressed_training.train).

    use_adapters=False trains the exit heads alone (the frozen-backbone baseline adapters must beat)."""
    model = mt.task(task)
    if model.compression.span_enabled and not model.span.frozen:
        model.span.freeze()
    mt.freeze_backbone(True)
    model.use_adapters = use_adapters
    for p in model.adapters.parameters():
        p.requires_grad_(use_adapters)
    model.reset_task_parameters(settings.seed if seed is None else seed)
    for name in model.task_parameter_names():  # biases chosen per forward while the weights move
        model.frozen_weight_biases.pop(name, None)
    losses = train(model, data, settings, progress=progress,
                   phase=f"{'adapters' if use_adapters else 'heads only'} {task}")
    if model.compression.quantize_weights:
        model.freeze_weight_biases()
    return losses


@dataclass
class MultiTaskReport:
    """Per task: the exit report of the adapter model; and the pre-training losses / backbone-only reports."""

    tasks: dict[str, ExitReport]
    pretrain_losses: list[float] = field(default_factory=list)
    adapter_losses: dict[str, list[float]] = field(default_factory=dict)
    heads_only: dict[str, ExitReport] = field(default_factory=dict)  # frozen backbone, heads alone (baseline)
    fp32_activations: dict[str, ExitReport] = field(default_factory=dict)  # before AF8 activations (if enabled)

    def format(self) -> str:
        """Per task, compressed_training's per-exit table (and the heads-only accuracies when measured)."""
        lines = []
        for t, r in self.tasks.items():
            lines += [f"[{t}]", r.format()]
            if t in self.heads_only:
                accs = " ".join(f"{a:.3f}" for a in self.heads_only[t].accuracy)
                lines.append(f"heads only (no adapters), accuracy per exit: {accs}")
            if t in self.fp32_activations:
                accs = " ".join(f"{a:.3f}" for a in self.fp32_activations[t].accuracy)
                lines.append(f"fp32 activations (before AF8 activations), accuracy per exit: {accs}")
        return "\n".join(lines)


@torch.no_grad()
def calibrate_task_activations(
    mt: MultiTaskAlbert,
    datasets: dict[str, TaskData],
    batch_size: int = 256,
    tie_layers: bool | None = None,
    attention: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """AF8 activations for every task: record each point's largest magnitude over every task's `datasets` (each
    through its own task model), fix one bias per point shared by all tasks, and switch quantization on.

    tie_layers (default: when the adapters are shared across depth, i.e. the layers can run as one loop): one bias
    per point for all layers too (af8_fake_quant.ActivationQuantizer.finish_calibration). attention: the attention's
    q, k, v and probabilities too (CompressionConfig.quantize_attention)."""
    mt.set_compression(quantize_attention=attention)
    quant = mt.backbone.activation_quant
    quant.amax = {}  # a fresh calibration (not widened by an earlier one)
    for task, data in datasets.items():
        record_activation_ranges(mt.task(task), data, batch_size, progress)
    mt.set_compression(quantize_activations=True)
    if tie_layers is None:
        tie_layers = not mt.adapter_config.per_depth
    return quant.finish_calibration(tie_layers)


def evaluate_tasks(mt: MultiTaskAlbert, datasets: dict[str, TaskData]) -> dict[str, ExitReport]:
    """evaluate_exits of each task model on its own data (adapters on)."""
    return {t: evaluate_exits(mt.task(t), d) for t, d in datasets.items()}


def run_recipe(
    mt: MultiTaskAlbert, train_sets: dict[str, TaskData], eval_sets: dict[str, TaskData], recipe: MultiTaskRecipe,
    progress: Progress | None = None,
) -> MultiTaskReport:
    """Pre-train (and prune / AF8-fine-tune) the backbone, freeze it, then train every task's adapters and heads
    (and, with af8_activations, calibrate one AF8 bias per activation point over every task's training data).
    `progress`: every phase's bar and per-epoch notes."""
    if recipe.af8_activations and not recipe.af8:
        raise ValueError("AF8 activations need AF8 weights (MultiTaskRecipe.af8=True)")
    if recipe.af8_attention and not recipe.af8_activations:
        raise ValueError("AF8 attention needs AF8 activations (MultiTaskRecipe.af8_activations=True)")
    pre = recipe.pretrain_tasks or mt.task_names
    pre_sets = {t: train_sets[t] for t in pre}
    losses = pretrain_backbone(mt, pre_sets, recipe.pretrain, progress=progress)
    if recipe.prune_method != "none":
        pruner = make_backbone_pruner(mt, recipe.prune_method, recipe.sparsity_targets)
        losses += pretrain_backbone(mt, pre_sets, recipe.prune, pruner, progress, f"prune {recipe.prune_method}")
    if mt.backbone.compression.span_enabled:
        mt.backbone.span.freeze()
    if recipe.af8:
        mt.set_compression(quantize_weights=True)
        losses += pretrain_backbone(mt, pre_sets, recipe.qat, progress=progress, phase="af8 fine-tune")
        mt.freeze_backbone_weight_biases()
    heads_only = {}
    if recipe.heads_only_baseline:
        for t in mt.task_names:
            train_task_adapters(mt, t, train_sets[t], recipe.adapters, use_adapters=False, progress=progress)
            heads_only[t] = evaluate_exits(mt.task(t), eval_sets[t])
    adapter_losses = {t: train_task_adapters(mt, t, train_sets[t], recipe.adapters, progress=progress)
                      for t in mt.task_names}
    if recipe.af8:
        mt.share_task_weight_biases()
    before = {}
    if recipe.af8_activations:
        before = evaluate_tasks(mt, eval_sets)
        calibrate_task_activations(mt, train_sets, attention=recipe.af8_attention, progress=progress)
    return MultiTaskReport(evaluate_tasks(mt, eval_sets), losses, adapter_losses, heads_only, before)
