"""Training, pruning fine-tune, quantization-aware fine-tune and per-exit evaluation of CompressedAlbert on CPU."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from edgebert.frontend.models.compressed_albert import CompressedAlbert, early_exit_layer, exit_entropy
from edgebert.frontend.models.pruning import Pruner
from edgebert.frontend.models.synthetic_tasks import DIFFICULTIES, TaskData
from edgebert.isa.progress import Progress, progress_or_silent

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Optimiser settings of one training phase."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    span_penalty: float = 0.0  # weight of the mean-span L1 term (adaptive span)
    seed: int = 0


@dataclass
class ExitReport:
    """Per-layer accuracy and mean entropy (overall and per difficulty), plus the early-exit outcome."""

    accuracy: list[float]
    mean_entropy: list[float]
    by_difficulty: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    threshold: float = 0.0
    early_exit_accuracy: float = 0.0
    mean_exit_layer: float = 0.0

    def format(self) -> str:
        """A small text table: one line per layer."""
        diffs = list(self.by_difficulty)
        head = "layer  acc    H    " + "".join(f"  acc/H {d:<6}" for d in diffs)
        lines = [head]
        for i, (a, h) in enumerate(zip(self.accuracy, self.mean_entropy, strict=True)):
            cols = "".join(
                f"  {self.by_difficulty[d]['accuracy'][i]:.3f}/{self.by_difficulty[d]['mean_entropy'][i]:.3f}"
                for d in diffs
            )
            lines.append(f"{i + 1:>5}  {a:.3f}  {h:.3f}{cols}")
        lines.append(
            f"early exit at entropy < {self.threshold:g}: accuracy {self.early_exit_accuracy:.3f}, "
            f"mean exit layer {self.mean_exit_layer:.2f}"
        )
        return "\n".join(lines)


def exit_loss_weights(num_layers: int) -> torch.Tensor:
    """Exit i's weight in the joint loss: proportional to i (later exits matter more), summing to 1."""
    w = torch.arange(1, num_layers + 1, dtype=torch.float32)
    return w / w.sum()


def joint_exit_loss(exit_logits: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
    """Weighted sum of every exit's cross-entropy (EdgeBERT/DeeBERT joint training of the off-ramps)."""
    weights = exit_loss_weights(len(exit_logits))
    return sum(w * F.cross_entropy(lg, labels) for w, lg in zip(weights, exit_logits, strict=True))


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):  # noqa: ANN202
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def make_optimizer(
    params: list[torch.nn.Parameter], settings: TrainSettings, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over `params` with a linear warm-up (first 10 % of the steps) and a linear decay to zero."""
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = max(1, total_steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(total_steps - warmup, 1)))
    )
    return opt, sched


def train_step(
    model: CompressedAlbert,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    settings: TrainSettings,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    pruner: Pruner | None = None,
    ramp: tuple[int, int] = (0, 1),
    correct: list[int] | None = None,
) -> float:
    """One optimisation step on (input_ids, attention_mask, labels): the joint exit loss (+ span penalty while the
    spans learn); with a pruner, its masks at ramp step `ramp[0]` of `ramp[1]` and its scores accumulated. The loss;
    `correct` (when given) gains the last exit's right answers in the batch."""
    ids, mask, labels = batch
    if pruner is not None:
        pruner.step(*ramp)
    out = model(ids, mask)
    if correct is not None:
        correct.append(int((out.exit_logits[-1].detach().argmax(-1) == labels).sum()))
    loss = joint_exit_loss(out.exit_logits, labels)
    if settings.span_penalty and model.compression.span_enabled and not model.span.frozen:
        loss = loss + settings.span_penalty * model.span.penalty()
    opt.zero_grad()
    loss.backward()
    if pruner is not None:
        pruner.accumulate()
    opt.step()
    sched.step()
    return float(loss.detach())


def train(
    model: CompressedAlbert,
    data: TaskData,
    settings: TrainSettings,
    pruner: Pruner | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    progress: Progress | None = None,
    phase: str = "train",
) -> list[float]:
    """Jointly train all exits; with a pruner, ramp its masks to the target sparsity over the run. Mean loss/epoch.
    `progress`: a bar over the batches (the running loss in its description, ETA) and a note per epoch (loss and the
    last exit's accuracy on the training batches), labelled `phase`."""
    say = progress_or_silent(progress)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    total = settings.epochs * -(-len(data) // settings.batch_size)
    opt, sched = make_optimizer(params, settings, total)
    # reach the final sparsity after 2/3 of the run, then fine-tune at the final masks
    ramp_steps = max(1, (2 * total) // 3)
    ids, mask, labels = (torch.from_numpy(a) for a in (data.input_ids, data.attention_mask, data.labels))
    losses, step = [], 0
    model.train()
    bar = say.task(f"[{phase}] epoch 1/{settings.epochs}", total=total)
    for epoch in range(settings.epochs):
        total_loss, seen, correct = 0.0, 0, []
        for idx in _batches(len(data), settings.batch_size, rng):
            batch = (ids[idx], mask[idx], labels[idx])
            loss = train_step(model, batch, settings, opt, sched, pruner, (min(step, ramp_steps), ramp_steps),
                              correct)
            total_loss += loss * len(idx)
            seen += len(idx)
            step += 1
            bar.advance(description=f"[{phase}] epoch {epoch + 1}/{settings.epochs}, loss {total_loss / seen:.4f}")
        losses.append(total_loss / len(data))
        accuracy = sum(correct) / len(data)
        log.info("epoch %d: loss %.4f", epoch + 1, losses[-1])
        say.note(f"[{phase}] epoch {epoch + 1}/{settings.epochs}: loss {losses[-1]:.4f}, accuracy {100 * accuracy:.1f} % "
                 "(last exit, training batches)")
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    bar.close()
    if pruner is not None:
        pruner.apply(1.0)
    model.eval()
    return losses


@torch.no_grad()
def exit_outputs(model: CompressedAlbert, data: TaskData, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(logits [L, n, labels], entropies [L, n]) of every exit head on every example (eval mode)."""
    model.eval()
    logits = []
    for idx in _batches(len(data), batch_size, None):
        out = model(torch.from_numpy(data.input_ids[idx]), torch.from_numpy(data.attention_mask[idx]))
        logits.append(torch.stack(out.exit_logits))
    lg = torch.cat(logits, dim=1)
    return lg.numpy(), exit_entropy(lg).numpy()


def record_entropies(model: CompressedAlbert, data: TaskData) -> np.ndarray:
    """Per-sentence, per-layer exit entropies [n, L] (write them with edgebert.isa.traces.write_entropy_trace)."""
    return exit_outputs(model, data)[1].T.copy()


def evaluate_exits(model: CompressedAlbert, data: TaskData, threshold: float | None = None) -> ExitReport:
    """Accuracy and mean entropy of every exit, per difficulty, and the early-exit accuracy / mean exit layer."""
    thr = model.compression.entropy_threshold if threshold is None else threshold
    logits, ent = exit_outputs(model, data)
    correct = logits.argmax(-1) == data.labels[None, :]
    by_diff = {}
    for d in DIFFICULTIES:
        sel = data.difficulty == d
        if sel.any():
            by_diff[d] = {"accuracy": correct[:, sel].mean(1).tolist(), "mean_entropy": ent[:, sel].mean(1).tolist()}
    layer = early_exit_layer(ent, thr)
    ee_correct = correct[layer - 1, np.arange(len(layer))]
    return ExitReport(
        correct.mean(1).tolist(), ent.mean(1).tolist(), by_diff, thr, float(ee_correct.mean()), float(layer.mean())
    )


@torch.no_grad()
def record_activation_ranges(model: CompressedAlbert, data: TaskData, batch_size: int = 256,
                             progress: Progress | None = None) -> None:
    """Run `data` through `model` (eval) with its activation quantizer recording each point's largest magnitude."""
    model.eval()
    model.activation_quant.mode = "calibrate"
    with progress_or_silent(progress).task("[calibrate] AF8 activation ranges", total=len(data)) as bar:
        for idx in _batches(len(data), batch_size, None):
            model(torch.from_numpy(data.input_ids[idx]), torch.from_numpy(data.attention_mask[idx]))
            bar.advance(len(idx))


def calibrate_activations(model: CompressedAlbert, data: TaskData, batch_size: int = 256,
                          progress: Progress | None = None) -> dict[str, int]:
    """Record activation ranges at every matmul input on `data`, fix their AF8 biases, enable quantization."""
    record_activation_ranges(model, data, batch_size, progress)
    model.compression.quantize_activations = True
    return model.activation_quant.finish_calibration()
