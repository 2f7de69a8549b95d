"""EdgeBERT metadata carried in an ONNX model's `metadata_props`, parsed into a typed, validated dataclass.

One key per field, prefixed `edgebert.`, value JSON (the schema `models.compressed_export.edgebert_metadata` writes;
docs/compressed_model.md), or a single key `edgebert` holding a JSON object with the same field names.
Every field is optional; simple forms are accepted too:

    version             int
    task                "name" | {"name", "num_labels", "label_names"};   tasks: ["name", ...]
    model               {"num_layers", "hidden_size", ...}                 (kept as a dict)
    exit_heads          ["out", ...] | {"outputs": [...], "layers": [1-based layer per head], ...}
    exit_layers         [int, ...]   (when exit_heads is a plain list)
    entropy_threshold   float | [float per exit head]
    attention_spans     [span per layer] | {"enabled", "ramp", "max_span", "spans", "full", ...}
    span_ramp           float        (when attention_spans is a plain list)
    sparsity            float | {...}
    quantization        {"format": "af8" | "none", ...}
    dvfs_lookup         [...];  latency_target_ms: float

Unknown `edgebert.*` keys are kept in `extra` (newer producers must not break older compilers).
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
    """What the compressed-ALBERT exporter tells the compiler; all empty when the model carries none."""

    version: int | None = None
    exit_heads: tuple[str, ...] = ()  # graph output names of the exit classifiers, layer order
    exit_layers: tuple[int, ...] = ()  # 1-based encoder layer after which each head runs
    entropy_thresholds: tuple[float, ...] = ()  # one for every head, or one per head
    attention_spans: tuple[Any, ...] = ()  # per layer (or per layer and head)
    span_ramp: float | None = None
    sparsity: float | dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    tasks: tuple[str, ...] = ()
    task_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    exit_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    span_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    dvfs_lookup: tuple[Any, ...] = ()
    latency_target_ms: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def task(self) -> str | None:
        """The first (usually only) task name."""
        return self.tasks[0] if self.tasks else None

    @property
    def has_early_exit(self) -> bool:
        return bool(self.exit_heads)

    @property
    def quantization_format(self) -> str:
        """'af8' or 'none'."""
        return str((self.quantization or {}).get("format", "none"))

    def threshold_for(self, head_index: int) -> float:
        """Entropy threshold of exit head `head_index` (a single threshold applies to every head)."""
        if not self.entropy_thresholds:
            raise CompileError("model metadata has no entropy_threshold for its exit heads")
        if len(self.entropy_thresholds) == 1:
            return self.entropy_thresholds[0]
        return self.entropy_thresholds[head_index]


_KNOWN = ("version", "task", "tasks", "model", "exit_heads", "exit_layers", "entropy_threshold",
          "attention_spans", "span_ramp", "sparsity", "quantization", "dvfs_lookup", "latency_target_ms")


def parse_metadata(props: dict[str, str], output_names: tuple[str, ...] | None = None) -> EdgebertMetadata:
    """Parse `metadata_props` (as a dict); validate types, and that exit heads name graph outputs."""
    fields: dict[str, Any] = {}
    if "edgebert" in props:
        blob = _json("edgebert", props["edgebert"])
        if not isinstance(blob, dict):
            raise CompileError("metadata 'edgebert' must be a JSON object")
        fields.update(blob)
    for key, text in props.items():
        if key.startswith(PREFIX):
            fields[key[len(PREFIX):]] = _json_or_text(key, text)
    out: dict[str, Any] = {"raw": dict(props)}
    out["extra"] = {k: v for k, v in fields.items() if k not in _KNOWN}
    if fields.get("version") is not None:
        out["version"] = _int("version", fields["version"])
    out.update(_parse_task(fields))
    if "model" in fields:
        out["model_info"] = _dict("model", fields["model"])
    out.update(_parse_exits(fields, output_names))
    out.update(_parse_spans(fields))
    sparsity = fields.get("sparsity")
    if sparsity is not None:
        out["sparsity"] = dict(sparsity) if isinstance(sparsity, dict) else _float("sparsity", sparsity)
    if fields.get("quantization") is not None:
        quant = _dict("quantization", fields["quantization"])
        if quant.get("format", "none") not in ("af8", "none"):
            raise CompileError(f"metadata quantization format {quant.get('format')!r} is not 'af8' or 'none'")
        out["quantization"] = quant
    out["dvfs_lookup"] = tuple(_list("dvfs_lookup", fields.get("dvfs_lookup", [])))
    if fields.get("latency_target_ms") is not None:
        out["latency_target_ms"] = _float("latency_target_ms", fields["latency_target_ms"])
    return EdgebertMetadata(**out)


def _parse_task(fields: dict[str, Any]) -> dict[str, Any]:
    tasks = list(_str_list("tasks", fields.get("tasks", [])))
    info: dict[str, Any] = {}
    task = fields.get("task")
    if isinstance(task, dict):
        info = dict(task)
        task = task.get("name")
    if task is not None:
        if not isinstance(task, str):
            raise CompileError(f"metadata task name must be a string, got {task!r}")
        tasks = [task, *[t for t in tasks if t != task]]
    return {"tasks": tuple(tasks), "task_info": info}


def _parse_exits(fields: dict[str, Any], output_names: tuple[str, ...] | None) -> dict[str, Any]:
    heads = fields.get("exit_heads", [])
    info: dict[str, Any] = {}
    layers = fields.get("exit_layers", [])
    if isinstance(heads, dict):
        info = dict(heads)
        layers = heads.get("layers", layers)
        heads = heads.get("outputs", [])
    heads = tuple(_str_list("exit_heads", heads))
    layers = tuple(_int("exit_layers", v) for v in _list("exit_layers", layers))
    if layers and len(layers) != len(heads):
        raise CompileError(f"metadata has {len(layers)} exit layers for {len(heads)} exit heads")
    raw = fields.get("entropy_threshold", [])
    thresholds = tuple(_float("entropy_threshold", t) for t in (raw if isinstance(raw, list) else [raw]))
    if len(thresholds) > 1 and len(thresholds) != len(heads):
        raise CompileError(f"metadata has {len(thresholds)} entropy thresholds for {len(heads)} exit heads")
    if output_names is not None:
        missing = [h for h in heads if h not in output_names]
        if missing:
            raise CompileError(f"metadata exit head(s) {', '.join(missing)} are not graph outputs")
    return {"exit_heads": heads, "exit_layers": layers, "entropy_thresholds": thresholds, "exit_info": info}


def _parse_spans(fields: dict[str, Any]) -> dict[str, Any]:
    spans = fields.get("attention_spans", [])
    ramp = fields.get("span_ramp")
    info: dict[str, Any] = {}
    if isinstance(spans, dict):
        info = dict(spans)
        ramp = spans.get("ramp", ramp)
        spans = spans.get("spans") if spans.get("enabled", True) else None
    spans = [] if spans is None else _list("attention_spans", spans)
    return {
        "attention_spans": tuple(spans),
        "span_ramp": None if ramp is None else _float("span_ramp", ramp),
        "span_info": info,
    }


def metadata_props_of(model) -> dict[str, str]:
    """An ONNX ModelProto's metadata_props as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def _json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CompileError(f"metadata {key!r} is not valid JSON: {e.msg} at char {e.pos}") from None


def _json_or_text(key: str, text: str) -> Any:
    """JSON, except that a bare task name may be written without quotes."""
    if key == PREFIX + "task" and not text.lstrip().startswith(("{", '"')):
        return text
    return _json(key, text)


def _dict(key: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise CompileError(f"metadata {key!r} must be a JSON object, got {type(value).__name__}")
    return dict(value)


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
