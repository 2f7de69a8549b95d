"""Single-task binaries vs one multi-task binary: memory, bytes loaded, energy per sentence, mixed task streams."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgebert.emulator.multitask import task_info
from edgebert.emulator.runner import Runner
from edgebert.isa.errors import EdgebertError
from edgebert.isa.hardware import HardwareConfig, default_config
from edgebert.isa.program import Program


def weight_bytes_by_level(program: Program) -> dict[str, int]:
    """Data-segment bytes per memory level."""
    out = {"envm": 0, "sram": 0, "dram": 0}
    for seg in program.segments:
        out[seg.space] += len(seg.data)
    return out


def on_chip_bytes(program: Program) -> dict[str, int]:
    """On-chip memory a program occupies: eNVM weights, SRAM activations peak (+ the multi-task task region)."""
    w = weight_bytes_by_level(program)
    mt = task_info(program)
    region = (mt.get("task_region") or {}).get("bytes", 0) if mt else 0
    sram = int(program.metadata.get("sram_peak_bytes", 0)) + region
    return {"envm": w["envm"], "sram": sram, "total": w["envm"] + sram, "dram_weights": w["dram"]}


def _totals(reports: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    n = max(len(reports), 1)
    return {
        "energy_j": sum(r["energy_j"] for r in reports) / n,
        "cycles": sum(r["cycles"] for r in reports) / n,
        "envm_read_bytes": sum(r["traffic_bytes"]["envm"]["read"] for r in reports) / n,
        "sram_read_bytes": sum(r["traffic_bytes"]["sram"]["read"] for r in reports) / n,
        "dram_read_bytes": sum(r["traffic_bytes"]["dram"]["read"] for r in reports) / n,
    }


STREAM_KINDS = ("round-robin", "blocked")


def make_stream(kind: str, counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """(task, sentence index) in stream order over every sentence of every task. `round-robin`: one sentence of
    each task in turn (a task switch before every sentence); `blocked`: all of task 1, then task 2, ..."""
    if kind == "blocked":
        return [(t, i) for t, n in counts.items() for i in range(n)]
    if kind == "round-robin":
        return [(t, i) for i in range(max(counts.values(), default=0)) for t, n in counts.items() if i < n]
    raise EdgebertError(f"unknown stream kind '{kind}' (choose from {', '.join(STREAM_KINDS)})")


def _run_stream(mrun: Runner, sentences: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
                single_out: Mapping[tuple[str, int], Mapping[str, Any]], stream: Sequence[tuple[str, int]],
                kind: str | None) -> dict[str, Any]:
    """One mixed stream through the multi-task binary: each sentence starts with the previous sentence's task
    resident (the first with none), so every change of task loads the new task's block."""
    resident: str | None = None
    s_energy = m_energy = 0.0
    s_cycles = m_cycles = 0
    switches = loaded = 0
    for t, i in stream:
        r = mrun.run(sentences[t][i], task=t, resident_task=resident, check_races=False).report
        switches += resident != t
        loaded += r["multitask"]["task_block_bytes"]
        m_energy += r["energy_j"]
        m_cycles += r["cycles"]
        s_energy += single_out[(t, i)]["energy_j"]
        s_cycles += single_out[(t, i)]["cycles"]
        resident = t
    return {
        "kind": kind, "sentences": len(stream), "switches": switches, "bytes_loaded": loaded,
        "single_energy_j": s_energy, "multi_energy_j": m_energy,
        "single_cycles": s_cycles, "multi_cycles": m_cycles,
    }


def compare(
    singles: Mapping[str, Program],
    multi: Program,
    sentences: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    hw: HardwareConfig | None = None,
    stream: Sequence[tuple[str, int]] | None = None,
    streams: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> dict[str, Any]:
    """Run every sentence through its single-task binary and through the multi-task binary (its task resident,
    i.e. steady state), then a mixed stream (default: round robin over the tasks, a switch before every sentence)
    where each multi-task sentence starts with the previous sentence's task resident.

    `streams` (kind -> [(task, index)], e.g. from `make_stream`) runs several streams: result `streams.<kind>`;
    `stream` is then the first of them. Raises EdgebertError if the two binaries disagree on a sentence."""
    hw = hw or default_config()
    tasks = list(singles)
    for t, p in singles.items():
        if not p.metadata.get("early_exit"):
            raise EdgebertError(f"the single-task binary of task '{t}' has no early exit (the multi-task binary "
                                f"always has): compile it with edgebertc --early-exit")
    runners = {t: Runner(p, hw) for t, p in singles.items()}
    mrun = Runner(multi, hw)
    per_task: dict[str, Any] = {}
    single_out: dict[tuple[str, int], Any] = {}
    for t in tasks:
        s_reports, m_reports = [], []
        for i, x in enumerate(sentences[t]):
            a = runners[t].run(x, check_races=False)
            b = mrun.run(x, task=t, resident_task=t, check_races=False)
            la, lb = a.outputs.get("logits"), b.outputs.get("logits")
            same = la is not None and lb is not None and la.shape == lb.shape and np.allclose(la, lb, atol=1e-5)
            if a.exit_layer != b.exit_layer or not same:
                raise EdgebertError(f"task {t} sentence {i}: the multi-task binary disagrees with the single-task one "
                                    f"(exit layer {b.exit_layer} vs {a.exit_layer})")
            single_out[(t, i)] = a.report
            s_reports.append(a.report)
            m_reports.append(b.report)
        per_task[t] = {"single": _totals(s_reports), "multi": _totals(m_reports), "sentences": len(s_reports),
                       "exit_layers": {"single": [r["exit_layer"] for r in s_reports],
                                       "multi": [r["exit_layer"] for r in m_reports]}}
    if streams is None:
        if stream is None:
            n = min(len(v) for v in sentences.values())
            streams = {"round-robin": [(t, i) for i in range(n) for t in tasks]}
        else:
            streams = {"custom": stream}
    ran = {kind: _run_stream(mrun, sentences, single_out, s, kind) for kind, s in streams.items()}
    mem_single = {t: on_chip_bytes(p) for t, p in singles.items()}
    return {
        "tasks": tasks,
        "hw": hw.name,
        "memory": {
            "single": mem_single,
            "single_total": {k: sum(m[k] for m in mem_single.values()) for k in ("envm", "total", "dram_weights")}
            | {"sram": max(m["sram"] for m in mem_single.values())},
            "multi": on_chip_bytes(multi),
            "weights_single": sum(sum(weight_bytes_by_level(p).values()) for p in singles.values()),
            "weights_multi": sum(weight_bytes_by_level(multi).values()),
            "multi_shared_bytes": (task_info(multi) or {}).get("shared_bytes"),
            "multi_task_bytes": {d["name"]: d["weight_bytes"] for d in (task_info(multi) or {}).get("tasks", [])},
        },
        "per_task": per_task,
        "stream": next(iter(ran.values())),
        "streams": ran,
    }


def format_markdown(result: Mapping[str, Any]) -> str:
    """The comparison as markdown tables (docs/multitask.md)."""
    mem = result["memory"]
    ms, mm = mem["single_total"], mem["multi"]
    lines = [
        f"| memory | {len(result['tasks'])} single-task binaries | 1 multi-task binary | ratio |",
        "|---|---|---|---|",
        f"| weights (all levels) | {mem['weights_single']:,} B | {mem['weights_multi']:,} B "
        f"| {mem['weights_multi'] / mem['weights_single']:.3f} |",
        f"| eNVM | {ms['envm']:,} B | {mm['envm']:,} B | {mm['envm'] / max(ms['envm'], 1):.3f} |",
        f"| SRAM (activations peak, + task region) | {ms['sram']:,} B | {mm['sram']:,} B | "
        f"{mm['sram'] / max(ms['sram'], 1):.3f} |",
        f"| on-chip total (eNVM + SRAM) | {ms['envm'] + ms['sram']:,} B | {mm['total']:,} B | "
        f"{mm['total'] / max(ms['envm'] + ms['sram'], 1):.3f} |",
        "",
        "| task | energy/sentence single | multi (task resident) | ratio | eNVM read B single | multi "
        "| SRAM read B single | multi |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t, d in result["per_task"].items():
        s, m = d["single"], d["multi"]
        lines.append(f"| {t} | {s['energy_j'] * 1e9:.2f} nJ | {m['energy_j'] * 1e9:.2f} nJ | "
                     f"{m['energy_j'] / s['energy_j']:.3f} | {s['envm_read_bytes']:,.0f} | {m['envm_read_bytes']:,.0f} "
                     f"| {s['sram_read_bytes']:,.0f} | {m['sram_read_bytes']:,.0f} |")
    streams = result.get("streams") or {result["stream"].get("kind") or "round-robin": result["stream"]}
    lines += [
        "",
        "| mixed stream | sentences | task switches (first load included) | task-block bytes loaded "
        "| energy single-task binaries | multi-task | multi / single | cycles single | multi |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, st in streams.items():
        lines.append(f"| {kind} | {st['sentences']} | {st['switches']} | {st['bytes_loaded']:,} B "
                     f"| {st['single_energy_j'] * 1e9:.2f} nJ | {st['multi_energy_j'] * 1e9:.2f} nJ "
                     f"| {st['multi_energy_j'] / st['single_energy_j']:.3f} | {st['single_cycles']:,} "
                     f"| {st['multi_cycles']:,} |")
    return "\n".join(lines)
