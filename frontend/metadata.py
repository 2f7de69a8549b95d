"""EdgeBERT metadata carried in an ONNX model's `metadata_props`, parsed into a typed, validated dataclass.

Keys (all optional; values are JSON unless noted). Either one key `edgebert` holding a JSON object with the
field names below, or one key per field prefixed `edgebert.` (e.g. `edgebert.exit_heads`):

    exit_heads          list[str]   graph outputs that are the exit classifiers' logits, layer order
    entropy_threshold   float | list[float]   one threshold, or one per exit head
    exit_layers         list[int]   encoder layer (1-based) after which each exit head is computed
    attention_spans     list[float] | list[list[float]]  per layer (or per layer and head) attention span
    span_ramp           float       soft-mask ramp length R of the adaptive span (0 = hard cut)
    sparsity            float | dict[str, float]   overall weight density pruned away, or per tensor
    quantization        dict        e.g. {"format": "af8", "exp_bits": 3, ...}; free form, kept as is
    task / tasks        str / list[str]   task name(s) of this model (multi-task builds)
    dvfs_lookup         list        predicted-exit-layer lookup table (entropy bins -> layer), free form
    latency_target_ms   float       per-sentence latency target for latency-aware DVFS
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from edgebert.isa.errors import CompileError

PREFIX = "edgebert."


@dataclasses.dataclass(frozen=True)
class EdgebertMetadata:
    """What the compressed-ALBERT exporter tells the compiler; empty when the model carries none."""

    exit_heads: tuple[str, ...] = ()
    entropy_thresholds: tuple[float, ...] = ()
    exit_layers: tuple[int, ...] = ()
    attention_spans: tuple[Any, ...] = ()
    span_ramp: float | None = None
    sparsity: float | dict[str, float] | None = None
    quantization: dict[str, Any] | None = None
    tasks: tuple[str, ...] = ()
    dvfs_lookup: tuple[Any, ...] = ()
    latency_target_ms: float | None = None
    raw: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def task(self) -> str | None:
        """The first (usually only) task name."""
        return self.tasks[0] if self.tasks else None

    @property
    def has_early_exit(self) -> bool:
        return bool(self.exit_heads)

    def threshold_for(self, head_index: int) -> float:
        """Entropy threshold of exit head `head_index` (a single threshold applies to every head)."""
        if not self.entropy_thresholds:
            raise CompileError("model metadata has no entropy_threshold for its exit heads")
        if len(self.entropy_thresholds) == 1:
            return self.entropy_thresholds[0]
        return self.entropy_thresholds[head_index]


_FIELDS = ("exit_heads", "entropy_threshold", "exit_layers", "attention_spans", "span_ramp", "sparsity",
           "quantization", "task", "tasks", "dvfs_lookup", "latency_target_ms")


def parse_metadata(props: dict[str, str], output_names: tuple[str, ...] | None = None) -> EdgebertMetadata:
    """Parse `metadata_props` (as a dict); validate types and that exit heads name graph outputs."""
    fields: dict[str, Any] = {}
    if "edgebert" in props:
        blob = _json("edgebert", props["edgebert"])
        if not isinstance(blob, dict):
            raise CompileError("metadata 'edgebert' must be a JSON object")
        fields.update(blob)
    for key, text in props.items():
        if key.startswith(PREFIX):
            name = key[len(PREFIX):]
            fields[name] = text if name == "task" and not text.lstrip().startswith('"') else _json(key, text)
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise CompileError(f"unknown EdgeBERT metadata field(s): {', '.join(unknown)}")

    heads = tuple(_str_list("exit_heads", fields.get("exit_heads", [])))
    thresholds = fields.get("entropy_threshold", [])
    thresholds = tuple(_float("entropy_threshold", t) for t in (thresholds if isinstance(thresholds, list)
                                                                else [thresholds]))
    if len(thresholds) > 1 and len(thresholds) != len(heads):
        raise CompileError(f"metadata has {len(thresholds)} entropy thresholds for {len(heads)} exit heads")
    if output_names is not None:
        missing = [h for h in heads if h not in output_names]
        if missing:
            raise CompileError(f"metadata exit head(s) {', '.join(missing)} are not graph outputs")
    exit_layers = tuple(_int("exit_layers", v) for v in _list("exit_layers", fields.get("exit_layers", [])))
    if exit_layers and len(exit_layers) != len(heads):
        raise CompileError(f"metadata has {len(exit_layers)} exit_layers for {len(heads)} exit heads")
    tasks = fields.get("tasks", [])
    if "task" in fields:
        tasks = [fields["task"], *[t for t in tasks if t != fields["task"]]]
    sparsity = fields.get("sparsity")
    if sparsity is not None and not isinstance(sparsity, dict):
        sparsity = _float("sparsity", sparsity)
    quant = fields.get("quantization")
    if quant is not None and not isinstance(quant, dict):
        raise CompileError("metadata 'quantization' must be a JSON object")
    return EdgebertMetadata(
        exit_heads=heads,
        entropy_thresholds=thresholds,
        exit_layers=exit_layers,
        attention_spans=tuple(_list("attention_spans", fields.get("attention_spans", []))),
        span_ramp=None if fields.get("span_ramp") is None else _float("span_ramp", fields["span_ramp"]),
        sparsity=sparsity,
        quantization=quant,
        tasks=tuple(_str_list("tasks", tasks)),
        dvfs_lookup=tuple(_list("dvfs_lookup", fields.get("dvfs_lookup", []))),
        latency_target_ms=None if fields.get("latency_target_ms") is None
        else _float("latency_target_ms", fields["latency_target_ms"]),
        raw=dict(props),
    )


def metadata_props_of(model) -> dict[str, str]:
    """An ONNX ModelProto's metadata_props as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def _json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CompileError(f"metadata {key!r} is not valid JSON: {e.msg} at char {e.pos}") from None


def _list(key: str, value: Any) -> list:
    if not isinstance(value, list):
        raise CompileError(f"metadata {key!r} must be a JSON list, got {type(value).__name__}")
    return value


def _str_list(key: str, value: Any) -> list[str]:
    items = _list(key, value)
    if not all(isinstance(v, str) for v in items):
        raise CompileError(f"metadata {key!r} must be a list of strings")
    return items


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CompileError(f"metadata {key!r} must be a finite number, got {value!r}")
    return float(value)


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CompileError(f"metadata {key!r} must hold integers, got {value!r}")
    return value
