"""ONNX export of each task of a MultiTaskAlbert through compressed_export, with initializers renamed so every
backbone initializer has the same name and bytes in every task model, plus the edgebert.multitask metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgebert.frontend.models.adapters import AdapterAlbert, is_task_parameter
from edgebert.frontend.models.compressed_export import export_onnx, materialize, read_edgebert_metadata
from edgebert.frontend.models.multitask_albert import MultiTaskAlbert

MULTITASK_VERSION = 1
BACKBONE_PREFIX = "backbone."
TASK_PREFIX = "task."
CONST_PREFIX = "backbone.const."


def tensor_digest(array: np.ndarray) -> str:
    """sha256 of dtype, shape and raw bytes (the identity the compiler deduplicates by)."""
    arr = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def initializer_digests(model: onnx.ModelProto) -> dict[str, str]:
    """Initializer name -> tensor_digest of its value."""
    return {t.name: tensor_digest(numpy_helper.to_array(t)) for t in model.graph.initializer}


def _value_key(array: np.ndarray) -> tuple:
    arr = np.ascontiguousarray(array, dtype=np.float32)
    return arr.shape, arr.tobytes()


def _effective_tensors(model: AdapterAlbert) -> dict[tuple, list[tuple[str, bool]]]:
    """(shape, bytes) of every exported parameter value and of every 2-D one transposed -> [(torch name, transposed)]."""
    frozen = materialize(model)
    table: dict[tuple, list[tuple[str, bool]]] = {}
    for name, p in frozen.named_parameters():
        value = p.detach().numpy()
        table.setdefault(_value_key(value), []).append((name, False))
        if value.ndim == 2:
            table.setdefault(_value_key(value.T), []).append((name, True))
    return table


def _rename_plan(proto: onnx.ModelProto, model: AdapterAlbert) -> tuple[dict[str, str], dict[str, dict]]:
    """Old initializer name -> new name, and new name -> {"role", "torch_names", "transposed"}.

    An initializer equal to some backbone parameter's exported value is "backbone" (named after the sorted-first
    such parameter); one equal only to task parameters is "task" (named task.{task}.{torch name}); any other
    (constants such as span masks, shapes, scalars) is a backbone constant named by its content digest.
    The exporter merges equal tensors, so one initializer may stand for several parameters.
    """
    table = _effective_tensors(model)
    task = model.compression.task
    rename, info = {}, {}
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        hits = table.get(_value_key(arr), []) if arr.dtype == np.float32 else []
        backbone = sorted(h for h in hits if not is_task_parameter(h[0]))
        tasks = sorted(h for h in hits if is_task_parameter(h[0]))
        if backbone:
            name, transposed = backbone[0]
            new = f"{BACKBONE_PREFIX}{name}{'.T' if transposed else ''}"
            role = "backbone"
        elif tasks:
            name, transposed = tasks[0]
            new = f"{TASK_PREFIX}{task}.{name}{'.T' if transposed else ''}"
            role = "task"
        else:
            new, role, transposed = f"{CONST_PREFIX}{tensor_digest(arr)[:16]}", "backbone", False
        rename[init.name] = new
        entry = info.setdefault(new, {"role": role, "torch_names": [], "transposed": transposed})
        entry["torch_names"] = sorted({*entry["torch_names"], *(h[0] for h in backbone + tasks)})
    return rename, info


def _apply_renames(proto: onnx.ModelProto, rename: dict[str, str]) -> None:
    """Rename initializers and their uses; initializers that end up with the same name (same content) merge."""
    kept, seen = [], set()
    for init in proto.graph.initializer:
        init.name = rename[init.name]
        if init.name not in seen:
            seen.add(init.name)
            kept.append(init)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]
    for value in proto.graph.input:
        if value.name in rename:
            value.name = rename[value.name]


def _rename_in_metadata(obj: object, rename: dict[str, str], key: str | None = None) -> object:
    """Replace initializer names under "initializer" / "mask_initializers" keys of the compressed metadata."""
    if isinstance(obj, dict):
        return {k: _rename_in_metadata(v, rename, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename_in_metadata(v, rename, key) for v in obj]
    if isinstance(obj, str) and key in ("initializer", "mask_initializers"):
        return rename.get(obj, obj)
    return obj


def _locate(info: dict[str, dict], torch_name: str) -> str | None:
    for init_name, entry in info.items():
        if torch_name in entry["torch_names"]:
            return init_name
    return None


def adapter_layout(model: AdapterAlbert, info: dict[str, dict]) -> dict[str, object]:
    """Per site and part, the initializer of every depth (index d-1 for layer d), and the exit heads likewise."""
    ac = model.adapter_config
    n_layers = model.config.num_hidden_layers
    sites = {}
    for site in ac.sites:
        sites[site] = {
            f"{proj}.{kind}": [
                _locate(info, f"adapters.{site}.{model.adapter_depth(i)}.{proj}.{kind}") for i in range(n_layers)
            ]
            for proj in ("down", "up")
            for kind in ("weight", "bias")
        }
    heads = {
        f"{part}.{kind}": [_locate(info, f"exits.{i}.{part}.{kind}") for i in range(n_layers)]
        for part in ("dense", "classifier")
        for kind in ("weight", "bias")
    }
    return {
        "placement": ac.placement,
        "sites": list(ac.sites),
        "site_position": {
            "attention": "attention.dense output, before the residual add and attention LayerNorm",
            "ffn": "ffn_output output, before the residual add and full_layer_layer_norm",
        },
        "per_depth": ac.per_depth,
        "bottleneck": ac.bottleneck,
        "activation": ac.activation,
        "formula": "h + (act(h @ down.weight^T + down.bias) @ up.weight^T + up.bias)",
        "adapters": sites,
        "exit_heads": heads,
    }


def multitask_metadata(
    proto: onnx.ModelProto, mt: MultiTaskAlbert, task: str, info: dict[str, dict]
) -> dict[str, object]:
    """The edgebert.multitask entry: initializer roles, adapter/head layout and the backbone digest."""
    model = mt.task(task)
    digests = initializer_digests(proto)
    backbone = sorted(n for n, e in info.items() if e["role"] == "backbone")
    task_inits = sorted(n for n, e in info.items() if e["role"] == "task")
    nbytes = {t.name: int(numpy_helper.to_array(t).nbytes) for t in proto.graph.initializer}
    whole = hashlib.sha256("".join(f"{n}:{digests[n]};" for n in backbone).encode()).hexdigest()
    return {
        "version": MULTITASK_VERSION,
        "task": task,
        "num_labels": model.compression.num_labels,
        "tasks": mt.task_names,
        "backbone_frozen": True,
        "backbone_digest": whole,
        "backbone_initializers": backbone,
        "task_initializers": task_inits,
        "backbone_bytes": sum(nbytes[n] for n in backbone),
        "task_bytes": sum(nbytes[n] for n in task_inits),
        "initializers": {n: {**info[n], "sha256": digests[n]} for n in sorted(info)},
        "layout": adapter_layout(model, info),
    }


def export_task_onnx(
    mt: MultiTaskAlbert,
    task: str,
    path: str | Path,
    seq_len: int,
    threshold: float | None = None,
    opset: int = 18,
    dynamic_batch: bool = False,
) -> onnx.ModelProto:
    """Export task `task` like compressed_export.export_onnx (inputs input_ids + attention_mask, outputs
    exit_1_logits..exit_L_logits, edgebert.* metadata), backbone initializers renamed backbone.*, task ones
    task.{task}.*, and the edgebert.multitask entry added (schema in docs/multitask_model.md)."""
    model = mt.task(task)
    path = Path(path)
    proto = export_onnx(model, path, seq_len, threshold=threshold, opset=opset, dynamic_batch=dynamic_batch)
    rename, info = _rename_plan(proto, model)
    _apply_renames(proto, rename)
    meta = _rename_in_metadata(read_edgebert_metadata(proto), rename)
    meta["edgebert.multitask"] = multitask_metadata(proto, mt, task, info)
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return proto


def export_all_tasks(
    mt: MultiTaskAlbert,
    out_dir: str | Path,
    seq_len: int,
    thresholds: dict[str, float] | None = None,
    dynamic_batch: bool = False,
) -> dict[str, Path]:
    """One ONNX per task, `{out_dir}/{task}.onnx`; returns task -> path."""
    out = Path(out_dir)
    paths = {}
    for task in mt.task_names:
        paths[task] = out / f"{task}.onnx"
        export_task_onnx(
            mt, task, paths[task], seq_len, threshold=(thresholds or {}).get(task), dynamic_batch=dynamic_batch
        )
    return paths


def task_weight_tables(model: onnx.ModelProto | str | Path) -> dict[str, np.ndarray]:
    """The task-specific weights of an exported task model stacked by depth, as the compiler lays them out.

    Keys "adapters.{site}.{down|up}.{weight|bias}" and "exit_heads.{dense|classifier}.{weight|bias}"; each value
    is [num_layers, *initializer shape] (entry d-1 is layer d; weights as stored in the ONNX file, i.e. transposed
    where the initializer name ends in ".T"). Table row d of every key is what the shared loop body reads at depth d.
    """
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    layout = read_edgebert_metadata(proto)["edgebert.multitask"]["layout"]
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    tables = {}
    for site, parts in layout["adapters"].items():
        for part, names in parts.items():
            tables[f"adapters.{site}.{part}"] = np.stack([inits[n] for n in names])
    for part, names in layout["exit_heads"].items():
        tables[f"exit_heads.{part}"] = np.stack([inits[n] for n in names])
    return tables
