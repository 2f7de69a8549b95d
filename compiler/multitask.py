"""Multi-task compilation: task models sharing one backbone -> one Program (docs/multitask.md).

Each task is compiled with the single-task pipeline (classifier heads padded to a common label count, task
weights dense with one AF8 bias per weight slot common to every task), then linked by compiler/link.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgebert.compiler.compression import weight_key
from edgebert.compiler.errors import TaskRegionError
from edgebert.compiler.link import LinkResult, link_tasks
from edgebert.compiler.options import CompileOptions, EarlyExitOptions, TaskWeights
from edgebert.compiler.pipeline import CompileResult, compile_model
from edgebert.isa import adaptivfloat
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import HardwareConfig, default_config

#: Bias of the padded classifier rows: exp(pad - max) is exactly 0, so softmax/entropy are unchanged.
PAD_LOGIT = -1e30


@dataclass
class TaskModel:
    """One task's ONNX model and what the linker needs from its metadata."""

    name: str
    model: onnx.ModelProto
    num_labels: int
    label_names: list[str]
    threshold: float | None
    multitask: dict[str, Any]


def _metadata(proto: onnx.ModelProto) -> dict[str, Any]:
    out = {}
    for p in proto.metadata_props:
        try:
            out[p.key] = json.loads(p.value)
        except ValueError:
            out[p.key] = p.value
    return out


def load_task(path_or_model: str | Path | onnx.ModelProto, name: str | None = None) -> TaskModel:
    """A task model; its name from `name`, else metadata `edgebert.multitask.task` / `edgebert.task.name`."""
    proto = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(str(path_or_model))
    md = _metadata(proto)
    mt = md.get("edgebert.multitask")
    what = name or str(path_or_model if not isinstance(path_or_model, onnx.ModelProto) else "model")
    if not isinstance(mt, dict) or "layout" not in mt:
        raise CompileError(f"{what}: not a multi-task model (metadata edgebert.multitask with a layout is missing)")
    task = md.get("edgebert.task") or {}
    tname = name or mt.get("task") or task.get("name")
    if not tname:
        raise CompileError(f"{what}: no task name in the metadata; give --task NAME=PATH")
    thr = md.get("edgebert.entropy_threshold")
    if isinstance(thr, list):
        thr = thr[0] if len(set(thr)) == 1 else None
    return TaskModel(str(tname), proto, int(mt.get("num_labels", task.get("num_labels", 0))),
                     list(task.get("label_names", [])), float(thr) if thr is not None else None, mt)


def check_shared_backbone(tasks: list[TaskModel]) -> None:
    """Every task model must name the same backbone digest (else nothing is shared: say so)."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise CompileError(f"task names must be unique, got {names}")
    digests = {t.name: t.multitask.get("backbone_digest") for t in tasks}
    if len(set(digests.values())) != 1:
        raise CompileError(f"the task models do not share one backbone (edgebert.multitask.backbone_digest: {digests})")


def pad_heads(task: TaskModel, labels: int) -> onnx.ModelProto:
    """A copy whose classifiers have `labels` outputs: zero weight rows, bias PAD_LOGIT (entropy unchanged)."""
    proto = copy.deepcopy(task.model)
    if labels == task.num_labels:
        return proto
    heads = task.multitask["layout"]["exit_heads"]
    inits = {t.name: t for t in proto.graph.initializer}
    info = task.multitask.get("initializers", {})
    for name in heads["classifier.weight"]:
        arr = numpy_helper.to_array(inits[name])
        axis = 1 if info.get(name, {}).get("transposed") else 0  # MatMul [in, out] vs Gemm transB [out, in]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, labels - arr.shape[axis])
        inits[name].CopyFrom(numpy_helper.from_array(np.pad(arr, pad), name))
    for name in heads["classifier.bias"]:
        arr = numpy_helper.to_array(inits[name])
        padded = np.concatenate([arr, np.full(labels - arr.shape[0], PAD_LOGIT, arr.dtype)])
        inits[name].CopyFrom(numpy_helper.from_array(padded, name))
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[-1].HasField("dim_value") and dims[-1].dim_value == task.num_labels:
            dims[-1].dim_value = labels
    del proto.graph.value_info[:]
    return proto


def _slot_arrays(task: TaskModel, proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """slot ('adapters.attention.down.weight.3', ...) -> the task's 2-D weight in that slot (padded heads)."""
    layout = task.multitask["layout"]
    inits = {t.name: t for t in proto.graph.initializer}
    out = {}
    tables = [(f"adapters.{site}.{part}", names) for site, parts in layout["adapters"].items()
              for part, names in parts.items()]
    tables += [(f"exit_heads.{part}", names) for part, names in layout["exit_heads"].items()]
    for key, names in tables:
        for d, name in enumerate(names):
            arr = numpy_helper.to_array(inits[name]).astype(np.float32)
            if arr.ndim == 2 and name.startswith(f"task.{task.multitask.get('task', task.name)}."):
                out[f"{key}.{d}"] = arr
    return out


def common_task_formats(
    tasks: list[TaskModel], protos: list[onnx.ModelProto], af8: bool
) -> tuple[dict[bytes, int | None], list[str]]:
    """Weight key -> AF8 bias (None: fp32) for every task weight: one bias per slot that every task's weight
    round-trips exactly (the bias is an instruction immediate of the shared code), else fp32 for the slot; and a
    note for each slot an AF8 model had to store fp32."""
    slots = [_slot_arrays(t, p) for t, p in zip(tasks, protos, strict=True)]
    formats: dict[bytes, int | None] = {}
    notes = []
    for slot in slots[0]:
        arrays = [s[slot] for s in slots if slot in s]
        if all(weight_key(a) in formats for a in arrays):  # depth-shared adapters: the same weights at every depth
            continue
        bias = None
        if af8:
            biases = [adaptivfloat.choose_bias(a) for a in arrays]
            candidates = sorted(set(biases), reverse=True)
            bias = next((b for b in candidates
                         if all(np.array_equal(adaptivfloat.quantize(a, b), a) for a in arrays)), None)
            if bias is None:
                own = ", ".join(f"{t.name} {b}" for t, b in zip(tasks, biases, strict=False))
                notes.append(f"task weight slot {slot}: no AF8 bias represents every task's weight exactly (their "
                             f"biases: {own}); stored fp32, {3 * arrays[0].size} bytes more per task (train with "
                             f"MultiTaskAlbert.share_task_weight_biases)")
        for a in arrays:
            for view in (a, a.T):
                formats[weight_key(view)] = bias
    return formats, notes


def compile_task(
    proto: onnx.ModelProto,
    hw: HardwareConfig,
    formats: dict[bytes, int | None],
    threshold: float | None,
    early_exit: EarlyExitOptions | bool,
    seq_len: int | None = None,
    in_place: bool = False,
) -> CompileResult:
    """One task through the pipeline, its task weights stored per `formats` (options.TaskWeights).

    `early_exit` (options, or True): the exit heads as early-exit branches with the task's `threshold` (None: the
    model's). `in_place` (SRAM placement): the matmuls read the task weights in place from SRAM constants (this
    program keeps them above its activations as SRAM data segments; the linker moves them into the task region)."""
    exits = None
    if early_exit:
        base = early_exit if isinstance(early_exit, EarlyExitOptions) else EarlyExitOptions()
        exits = dataclasses.replace(base, threshold=threshold)
    return compile_model(proto, CompileOptions(seq_len, True, exits, TaskWeights(formats, in_place)), hw)


@dataclass(frozen=True)
class _TaskBuild:
    """Everything that compiles the tasks except the hardware target and the placement."""

    tasks: list[TaskModel]
    protos: list[onnx.ModelProto]
    formats: dict[bytes, int | None]
    early_exit: bool
    seq_len: int | None
    dvfs: dict[str, EarlyExitOptions] | None  # task -> options with a latency target

    def compile_all(self, hw: HardwareConfig, in_place: bool) -> list[CompileResult]:
        return [compile_task(p, hw, self.formats, t.threshold, (self.dvfs or {}).get(t.name, self.early_exit),
                             self.seq_len, in_place) for t, p in zip(self.tasks, self.protos, strict=True)]


def compile_multitask(
    models: list[Any],
    hw: HardwareConfig | None = None,
    *,
    names: list[str | None] | None = None,
    thresholds: dict[str, float] | None = None,
    early_exit: bool = True,
    placement: str = "auto",
    seq_len: int | None = None,
    dvfs: dict[str, EarlyExitOptions] | None = None,
) -> LinkResult:
    """Compile task models (paths or ModelProtos) into one multi-task Program; returns a link.LinkResult.

    `dvfs`: task -> `early_exit.EarlyExitOptions` with a latency target and that task's predictor (table or
    calibration entropies); each task gets its own DVFS plan and tables (its threshold still from `thresholds`).

    `placement`: "sram" (task weights copied into an SRAM region at task switch and read there in place by the
    matmuls; CompileError when they do not fit), "envm" (streamed from the eNVM task store through the weight
    staging buffers, like the backbone's) or "auto" (SRAM when it fits, else eNVM).
    """
    hw = hw or default_config()
    names = names or [None] * len(models)
    tasks = [load_task(m, n) for m, n in zip(models, names, strict=True)]
    if len(tasks) < 2:
        raise CompileError("a multi-task program needs at least two task models")
    check_shared_backbone(tasks)
    unknown = sorted(set(thresholds or {}) - {t.name for t in tasks} - {"*"})
    if unknown:
        raise CompileError(f"--task-threshold: no task '{unknown[0]}' (tasks: {', '.join(t.name for t in tasks)})")
    for t in tasks:
        if thresholds and (t.name in thresholds or "*" in thresholds):
            t.threshold = float(thresholds.get(t.name, thresholds.get("*")))
    labels = max(t.num_labels for t in tasks)
    protos = [pad_heads(t, labels) for t in tasks]
    quant = _metadata(tasks[0].model).get("edgebert.quantization") or {}
    af8 = isinstance(quant, dict) and str(quant.get("format", "none")) == "af8"
    formats, format_notes = common_task_formats(tasks, protos, af8)

    missing = sorted(set(dvfs or {}) - {t.name for t in tasks})
    if missing:
        raise CompileError(f"DVFS options for an unknown task '{missing[0]}'")

    build = _TaskBuild(tasks, protos, formats, early_exit, seq_len, dvfs)
    res = _place(build, hw, placement, labels)
    switch_s = task_switch_seconds(res.program, hw) if dvfs else 0.0
    if switch_s > 0:  # plan again with the longest task-switch copy kept in reserve
        res = _place(dataclasses.replace(build, dvfs=_budget_switch(dvfs or {}, switch_s)), hw, placement, labels)
        res.program.metadata["multitask"]["switch_budget_s"] = switch_s
    if format_notes:
        res.notes[:0] = format_notes
        res.program.metadata["multitask"]["notes"] = res.notes
    return res


def task_switch_seconds(program: Any, hw: HardwareConfig) -> float:
    """The longest task switch of a linked program (the copy of a task block into the SRAM task region), in seconds
    at the operating point the program starts at: every task run timing-only with its block to load and resident."""
    from edgebert.emulator.runner import Runner

    runner = Runner(program, hw)
    worst = 0.0
    for entry in program.metadata["multitask"]["tasks"]:
        kw = {"timing_only": True, "entropy_values": [math.inf] * 4096, "disable_dvfs": True,
              "disable_early_exit": True, "check_races": False}
        cold = runner.run({}, task=entry["name"], **kw).report["seconds"]
        warm = runner.run({}, task=entry["name"], resident_task=entry["name"], **kw).report["seconds"]
        worst = max(worst, cold - warm)
    return worst


def _budget_switch(dvfs: dict[str, Any], switch_s: float) -> dict[str, Any]:
    """Each task's DVFS options with `switch_s` more kept in reserve (the plan's margin), so that a sentence that
    starts with a task switch still meets the latency target."""
    out = {}
    for name, opts in dvfs.items():
        target = opts.latency_target_s
        if target is None:
            out[name] = opts
            continue
        margin = opts.margin + switch_s / target
        if margin >= 1:
            raise CompileError(f"task '{name}': the latency target {target * 1e6:.3f} us leaves no time once a task "
                               f"switch ({switch_s * 1e6:.3f} us) is budgeted")
        out[name] = dataclasses.replace(opts, margin=margin)
    return out


def _place(build: _TaskBuild, hw: HardwareConfig, placement: str, labels: int) -> LinkResult:
    """Link the compiled tasks with the placement asked for ("auto": SRAM, replanned below a reserved task region
    when needed, else eNVM with a note). SRAM: compiled with the task weights read in place; eNVM: compiled again
    with them staged (the matmul cannot read eNVM)."""
    if placement == "envm":
        return link_tasks(build.tasks, build.compile_all(hw, False), hw, placement="envm", padded_labels=labels)
    try:
        return link_tasks(build.tasks, build.compile_all(hw, True), hw, placement="sram", padded_labels=labels)
    except TaskRegionError as exc:
        sram = hw.memory.sram
        if sram.buffers:  # the buffers' sizes are the hardware's: no replanning below a reserved region
            if placement == "sram":
                raise
            res = link_tasks(build.tasks, build.compile_all(hw, False), hw, placement="envm", padded_labels=labels)
            res.notes.append(f"SRAM placement impossible ({exc}): task weights streamed (staged) from "
                             f"{res.program.metadata['multitask']['tasks'][0]['block']['space']}")
            res.program.metadata["multitask"]["notes"] = res.notes
            return res
        # plan the activations in the SRAM below a reserved task region, and try again
        reserved = dataclasses.replace(hw, memory=dataclasses.replace(
            hw.memory, sram=dataclasses.replace(sram, size_bytes=max(sram.size_bytes - exc.reserve, 0))))
        try:
            results = build.compile_all(reserved, True)
            res = link_tasks(build.tasks, results, hw, placement="sram", padded_labels=labels)
            plans = [r.memory_plan for r in results if r.memory_plan is not None]
            how = (f"their memory-hierarchy plan spills {sum(h == 'dram' for h in plans[0].homes.values())} tensors to "
                   "DRAM" if plans else "every tensor still in SRAM")
            res.notes.append(f"the SRAM task region ({exc.reserve} bytes at the top) did not fit beside the "
                             f"activations: they are planned in the {reserved.memory.sram.size_bytes} bytes below it "
                             f"({how})")
            res.program.metadata["multitask"]["notes"] = res.notes
            return res
        except CompileError as again:
            if placement == "sram":
                raise CompileError(f"{exc}; with the activations planned below the task region: {again}") from None
            res = link_tasks(build.tasks, build.compile_all(hw, False), hw, placement="envm", padded_labels=labels)
            res.notes.append(f"SRAM placement impossible ({exc}; {again}): task weights streamed (staged) from "
                             f"{res.program.metadata['multitask']['tasks'][0]['block']['space']}")
            res.program.metadata["multitask"]["notes"] = res.notes
            return res
