"""Three single-task binaries vs one multi-task binary: memory, bytes loaded, energy per sentence, a mixed stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgebert.emulator.multitask import task_info
from edgebert.emulator.runner import Runner
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


def compare(
    singles: Mapping[str, Program],
    multi: Program,
    sentences: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    hw: HardwareConfig | None = None,
    stream: Sequence[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """Run every sentence through its single-task binary and through the multi-task binary (its task resident,
    i.e. steady state), then a mixed stream (default: round robin over the tasks, a switch before every sentence)
    where each multi-task sentence starts with the previous sentence's task resident."""
    hw = hw or default_config()
    tasks = list(singles)
    runners = {t: Runner(p, hw) for t, p in singles.items()}
    mrun = Runner(multi, hw)
    per_task: dict[str, Any] = {}
    single_out: dict[tuple[str, int], Any] = {}
    for t in tasks:
        s_reports, m_reports = [], []
        for i, x in enumerate(sentences[t]):
            a = runners[t].run(x, check_races=False)
            b = mrun.run(x, task=t, resident_task=t, check_races=False)
            if a.exit_layer != b.exit_layer or not np.allclose(a.outputs["logits"], b.outputs["logits"], atol=1e-5):
                raise AssertionError(f"task {t} sentence {i}: the multi-task binary disagrees with the single-task one")
            single_out[(t, i)] = a.report
            s_reports.append(a.report)
            m_reports.append(b.report)
        per_task[t] = {"single": _totals(s_reports), "multi": _totals(m_reports), "sentences": len(s_reports)}
    if stream is None:
        n = min(len(v) for v in sentences.values())
        stream = [(t, i) for i in range(n) for t in tasks]
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
    mem_single = {t: on_chip_bytes(p) for t, p in singles.items()}
    return {
        "tasks": tasks,
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
        "stream": {
            "sentences": len(stream), "switches": switches, "bytes_loaded": loaded,
            "single_energy_j": s_energy, "multi_energy_j": m_energy,
            "single_cycles": s_cycles, "multi_cycles": m_cycles,
        },
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
    st = result["stream"]
    lines += [
        "",
        f"Mixed stream: {st['sentences']} sentences, {st['switches']} task switch(es), {st['bytes_loaded']:,} B of "
        f"task blocks loaded; energy single-task binaries {st['single_energy_j'] * 1e9:.2f} nJ, multi-task "
        f"{st['multi_energy_j'] * 1e9:.2f} nJ ({st['multi_energy_j'] / st['single_energy_j']:.3f}x); cycles "
        f"{st['single_cycles']:,} vs {st['multi_cycles']:,}.",
    ]
    return "\n".join(lines)


def _pairs(specs: Sequence[str], what: str) -> dict[str, str]:
    from edgebert.isa.errors import EdgebertError

    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise EdgebertError(f"{what} expects NAME=PATH, got '{spec}'")
        out[name] = path
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m edgebert.emulator.multitask_bench multi.ebin --single NAME=EBIN ... --inputs NAME=NPZ ...`.

    Each NPZ holds the task's sentences stacked on axis 0 (one array per program input, e.g. input_ids [n, seq]).
    """
    import argparse
    import json
    import sys
    from pathlib import Path

    from edgebert.isa.ebin import load_ebin
    from edgebert.isa.errors import EdgebertError
    from edgebert.isa.hardware import load_config

    p = argparse.ArgumentParser(prog="edgebert-bench-multitask", description=__doc__)
    p.add_argument("multi", help="the multi-task .ebin")
    p.add_argument("--single", action="append", default=[], metavar="NAME=EBIN", help="a task's single-task .ebin")
    p.add_argument("--inputs", action="append", default=[], metavar="NAME=NPZ", help="a task's sentences")
    p.add_argument("--hw", help="hardware config TOML")
    p.add_argument("--json", help="write the raw comparison here")
    args = p.parse_args(argv)
    try:
        hw = load_config(args.hw) if args.hw else default_config()
        multi = load_ebin(args.multi)
        singles = {n: load_ebin(f) for n, f in _pairs(args.single, "--single").items()}
        sentences = {}
        for name, path in _pairs(args.inputs, "--inputs").items():
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            n = min(len(v) for v in arrays.values())
            sentences[name] = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(n)]
        if not singles or set(singles) != set(sentences):
            raise EdgebertError(f"give --single and --inputs for the same tasks (got {sorted(singles)} and "
                                f"{sorted(sentences)})")
        result = compare(singles, multi, sentences, hw)
    except (EdgebertError, OSError, AssertionError) as exc:
        print(f"edgebert-bench-multitask: error: {exc}", file=sys.stderr)
        return 2
    print(format_markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
