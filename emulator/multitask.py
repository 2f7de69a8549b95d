"""Multi-task programs in the emulator: task selection, a resident task's SRAM block, the report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig
from edgebert.isa.program import Program


class TaskSelectError(EdgebertError):
    """A task name the multi-task program does not have, or a task for a single-task program."""


def task_info(program: Program) -> dict[str, Any] | None:
    """The program's `multitask` metadata (None for a single-task program)."""
    mt = program.metadata.get("multitask")
    return mt if isinstance(mt, dict) else None


def task_names(program: Program) -> list[str]:
    mt = task_info(program)
    return [t["name"] for t in mt["tasks"]] if mt else []


def _task(mt: dict[str, Any], name: str) -> dict[str, Any]:
    for t in mt["tasks"]:
        if t["name"] == name:
            return t
    raise TaskSelectError(f"unknown task '{name}' (tasks: {', '.join(t['name'] for t in mt['tasks'])})")


def task_preload(program: Program, task: str | None, resident: str | None = None) -> list[tuple[str, int, bytes]]:
    """(space, address, bytes) to write before a run: the task-select word and, with `resident`, that task's
    block already in the SRAM task region (as left by an earlier sentence of that task)."""
    mt = task_info(program)
    if mt is None:
        if task is not None or resident is not None:
            raise TaskSelectError("--task: this is not a multi-task program (no multitask metadata)")
        return []
    if task is None:
        raise TaskSelectError(f"multi-task program: select a task ({', '.join(task_names(program))})")
    t = _task(mt, task)
    sel = mt["task_select"]
    out = [(sel["space"], int(sel["address"]), np.int32(t["index"]).tobytes())]
    if resident is not None and mt.get("task_region"):
        r = _task(mt, resident)
        blk, region, word = r["block"], mt["task_region"], mt["loaded_word"]
        data = _block_bytes(program, blk)
        out.append((region["space"], int(region["address"]), data))
        out.append((word["space"], int(word["address"]), np.int32(r["index"] + 1).tobytes()))
    return out


def _block_bytes(program: Program, blk: Mapping[str, Any]) -> bytes:
    """The bytes of a task block as stored in its data segments."""
    lo, n = int(blk["address"]), int(blk["bytes"])
    buf = bytearray(n)
    for seg in program.segments:
        if seg.space == blk["space"] and lo <= seg.address < lo + n:
            off = seg.address - lo
            buf[off : off + len(seg.data)] = seg.data
    return bytes(buf)


def slice_outputs(program: Program, task: str, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop the padded classifier columns: each logits output keeps the task's `num_labels`."""
    mt = task_info(program)
    if mt is None:
        return outputs
    t, padded = _task(mt, task), int(mt.get("padded_labels", 0))
    return {k: (v[..., : t["num_labels"]] if padded and v.shape and v.shape[-1] == padded else v)
            for k, v in outputs.items()}


def read_energy_j(report: Mapping[str, Any], hw: HardwareConfig) -> dict[str, float]:
    """Read energy per memory level (bytes read x read_pj_per_byte at nominal voltage)."""
    return {level: report["traffic_bytes"][level]["read"] * getattr(hw.memory, level).read_pj_per_byte * 1e-12
            for level in ("envm", "sram", "dram")}


def footprint(program: Program) -> dict[str, Any]:
    """Bytes per memory level: shared constants, each task's block, the SRAM task region and activations."""
    mt = task_info(program) or {}
    shared = dict(mt.get("shared_bytes", {}))
    tasks = {t["name"]: {"space": t["block"]["space"], "bytes": t["weight_bytes"], "block_bytes": t["block"]["bytes"]}
             for t in mt.get("tasks", [])}
    region = mt.get("task_region")
    return {
        "shared_bytes": shared,
        "task_bytes": tasks,
        "task_region_sram_bytes": region["bytes"] if region else 0,
        "activations_sram_peak_bytes": program.metadata.get("sram_peak_bytes"),
        "placement": mt.get("placement"),
        "total_weight_bytes": sum(len(s.data) for s in program.segments),
    }


def multitask_section(program: Program, task: str, resident: str | None, report: Mapping[str, Any],
                      hw: HardwareConfig) -> dict[str, Any]:
    """The report's `multitask` section for one run."""
    mt = task_info(program) or {}
    t = _task(mt, task)
    loaded = mt.get("placement") == "sram" and resident != task
    return {
        "task": task,
        "resident_task_before": resident,
        "task_block_loaded": loaded,
        "task_block_bytes": t["block"]["bytes"] if loaded else 0,
        "footprint": footprint(program),
        "read_energy_j": read_energy_j(report, hw),
    }


def switch_cost(program: Program, inputs: Mapping[str, np.ndarray], task: str, hw: HardwareConfig | None = None,
                previous: str | None = None) -> dict[str, Any]:
    """Cost of switching to `task` (from `previous`, default none resident): the same sentence run with the block
    to load minus run with it already resident (bytes, cycles, energy)."""
    from edgebert.emulator.runner import Runner

    runner = Runner(program, hw)
    cold = runner.run(inputs, task=task, resident_task=previous if previous != task else None, check_races=False)
    cold_r = cold.report
    warm_r = runner.run(inputs, task=task, resident_task=task, check_races=False).report
    return {
        "task": task,
        "from": previous,
        "bytes": cold_r["multitask"]["task_block_bytes"],
        "cycles": cold_r["cycles"] - warm_r["cycles"],
        "energy_j": cold_r["energy_j"] - warm_r["energy_j"],
        "read_bytes": {k: cold_r["traffic_bytes"][k]["read"] - warm_r["traffic_bytes"][k]["read"]
                       for k in cold_r["traffic_bytes"]},
    }


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """Terminal lines for the multitask and task_switch sections of a report."""
    mt = report["multitask"]
    fp = mt["footprint"]
    lines = [f"task {mt['task']} (placement {fp['placement']}; block loaded this run: {mt['task_block_loaded']})",
             "footprint: shared " + ", ".join(f"{k} {v:,} B" for k, v in fp["shared_bytes"].items())
             + "; task-specific " + ", ".join(f"{k} {v['bytes']:,} B ({v['space']})" for k, v in fp["task_bytes"].items())
             + f"; SRAM task region {fp['task_region_sram_bytes']:,} B",
             "read energy: " + ", ".join(f"{k} {v * 1e9:,.3f} nJ" for k, v in mt["read_energy_j"].items())]
    sw = report.get("task_switch")
    if sw:
        lines.append(f"task switch to {sw['task']}: {sw['bytes']:,} B loaded, {sw['cycles']:,} cycles, "
                     f"{sw['energy_j'] * 1e9:,.3f} nJ")
    return lines
