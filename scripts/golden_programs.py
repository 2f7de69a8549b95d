"""Byte-identity guard: build a fixed set of programs deterministically and compare each `.ebin`'s SHA-256 with
tests/golden/programs.json
(without the source model's hash: see `sha256`).

    python scripts/golden_programs.py check [--only NAME ...] [--fast] [--keep DIR]
    python scripts/golden_programs.py record [--only NAME ...] [--keep DIR]
    python scripts/golden_programs.py list

Every model is built with fixed seeds and compiled with the default hardware config through the same entry points
the tests, the examples and `edgebertc` use; `check` exits 1 naming each program whose bytes changed. `record`
rewrites the manifest (only the programs built, with `--only`). `--fast` builds the cheap subset the test suite
checks (tests/golden/test_golden_programs.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "tests" / "golden" / "programs.json"

# ---- the model builders the programs come from (their import paths in one place) ----------------------------------
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "benchmarks"), str(REPO / "examples")]
import build_albert  # noqa: E402  examples/build_albert.py
import numpy as np  # noqa: E402
from albert_cases import export_albert  # noqa: E402  tests/e2e/albert_cases.py
from bench_compression import build as build_compressed  # noqa: E402  benchmarks/bench_compression.py
from bench_compression import export_variant  # noqa: E402
from multitask_cases import TASK_NAMES, train_tiny  # noqa: E402  tests/e2e/multitask_cases.py

from edgebert.compiler.cli import main as edgebertc  # noqa: E402
from edgebert.compiler.pipeline import compile_onnx  # noqa: E402
from edgebert.frontend.models.compressed_albert import CompressedAlbert, CompressionConfig, albert_config  # noqa: E402
from edgebert.frontend.models.compressed_export import export_onnx as export_compressed  # noqa: E402
from edgebert.frontend.models.multitask_export import export_all_tasks  # noqa: E402
from edgebert.frontend.models.synthetic_tasks import TASKS, VOCAB  # noqa: E402
from edgebert.isa.asm_cli import main as edgebert_as  # noqa: E402
from edgebert.isa.ebin import load_ebin, save_ebin, write_ebin  # noqa: E402
from edgebert.isa.traces import write_entropy_trace  # noqa: E402

# ---- programs -----------------------------------------------------------------------------------------------------

#: Latency targets (chosen once at about 1.5x the all-fastest latency of all L layers on edgebert-cmod, so the DVFS plans use
#: several operating points); fixed here so the programs do not depend on a probe compile.
COMPRESSED_TARGET = "690us"
EE_LOOP_TARGET = "143us"
MULTITASK_TARGET = "144us"


def _compile(model: Path, out: Path, seq_len: int | None = None) -> Path:
    save_ebin(compile_onnx(model, seq_len).program, out)
    return out


def _cli(argv: list[str], out: Path) -> Path:
    rc = edgebertc([*argv, "-o", str(out)])
    if rc != 0:
        raise SystemExit(f"golden_programs: edgebertc {' '.join(argv)} failed (exit {rc})")
    return out


def _entropies(path: Path, layers: int, seed: int, centre: float = 0.35) -> Path:
    rng = np.random.default_rng(seed)
    write_entropy_trace(path, np.abs(rng.normal(centre, 0.2, (300, layers))))
    return path


def tiny(d: Path) -> Path:
    """examples/build_albert.py --preset tiny --seq-len 16 (logits only, seed 0), as run.sh builds it."""
    model = d / "tiny.onnx"
    build_albert.main(["--preset", "tiny", "--seq-len", "16", "-o", str(model)])
    return _cli([str(model)], d / "tiny.ebin")


def _e2e(name: str, preset: str, seq: int, pad: int = 0, exporter: str = "legacy") -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        path, _ = export_albert(d, name, preset, seq, pad, exporter)
        return _compile(path, d / f"{name}.ebin", seq)

    build.__doc__ = f"tests/e2e albert case: preset {preset}, seq {seq}, {pad} padded, {exporter} exporter"
    return build


def compressed(d: Path) -> Path:
    """AF8 weights + activations + attention, bitmask-sparse encoder, adaptive span; early exit and latency-aware
    DVFS from calibration entropies (benchmarks/bench_compression.py's model, 4 layers, seq 32)."""
    model, seq = build_compressed(base=False, ramp=4)
    path = d / "compressed.onnx"
    export_variant(model, seq, path, span=True, af8=True, act=True, attn=True)
    cal = _entropies(d / "compressed_cal.txt", model.config.num_hidden_layers, seed=0)
    return _cli([str(path), "--latency-target", COMPRESSED_TARGET, "--calibration-entropies", str(cal)],
                d / "compressed.ebin")


def ee_loop(d: Path) -> Path:
    """An untrained 4-layer compressed ALBERT (fp32, no span): early exit inside ONE layer loop, with DVFS."""
    task = TASKS["sentiment"]
    cfg = albert_config(len(VOCAB), hidden=32, layers=4, heads=2, intermediate=64, max_positions=16, dropout=0.0)
    comp = CompressionConfig(task=task.name, num_labels=task.num_labels, label_names=list(task.label_names),
                             entropy_threshold=0.2, span_enabled=False, max_span=16, span_ramp=4)
    import torch

    torch.manual_seed(0)
    model = CompressedAlbert(cfg, comp)
    model.reset_parameters(seed=4)
    path = d / "ee_loop.onnx"
    export_compressed(model, str(path), 16, threshold=0.2)
    cal = _entropies(d / "ee_loop_cal.txt", 4, seed=1)
    return _cli([str(path), "--threshold", "0.3", "--latency-target", EE_LOOP_TARGET, "--calibration-entropies",
                 str(cal)], d / "ee_loop.ebin")


def _multitask_models(d: Path, per_depth: bool) -> dict[str, Path]:
    """tests/e2e/multitask_cases.train_tiny: 3 tasks, AF8 + pruned backbone, AF8 activations (per-depth adapters:
    AF8 attention too; depth-shared adapters: the layers and heads form one loop)."""
    mt = train_tiny(af8=True, per_depth=per_depth, af8_activations=True, af8_attention=per_depth)
    return export_all_tasks(mt, d, 16)


def multitask(d: Path) -> Path:
    """Three tasks with depth-shared adapters (one layer loop, heads read through r7), SRAM task placement, per-task
    thresholds and per-task DVFS tables."""
    paths = _multitask_models(d, per_depth=False)
    argv = [f"{t}={paths[t]}" for t in TASK_NAMES]
    argv += [f"--task-threshold={t}={0.3 + 0.1 * k}" for k, t in enumerate(TASK_NAMES)]
    argv += [f"--task-calibration={t}={_entropies(d / f'cal_{t}.txt', 3, seed=k, centre=0.2 + 0.3 * k)}"
             for k, t in enumerate(TASK_NAMES)]
    return _cli([*argv, "--latency-target", MULTITASK_TARGET], d / "multitask.ebin")


def multitask_envm(d: Path) -> Path:
    """Three tasks with per-depth adapters and AF8 attention (unrolled heads), task weights streamed from the eNVM
    task store, the models' thresholds."""
    paths = _multitask_models(d, per_depth=True)
    return _cli([str(paths[t]) for t in TASK_NAMES] + ["--task-placement", "envm"], d / "multitask_envm.ebin")


def _asm(name: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        out = d / f"asm_{name}.ebin"
        if edgebert_as([str(REPO / "examples" / "asm" / f"{name}.s"), "-o", str(out)]) != 0:
            raise SystemExit(f"golden_programs: edgebert-as examples/asm/{name}.s failed")
        return out

    build.__doc__ = f"examples/asm/{name}.s assembled by edgebert-as"
    return build


@dataclass(frozen=True)
class Golden:
    """One program of the guard: how to build it, and whether the fast test suite checks it."""

    name: str
    build: Callable[[Path], Path]
    fast: bool


PROGRAMS = [
    Golden("tiny", tiny, True),
    Golden("e2e-tiny", _e2e("tiny", "tiny", 16), True),
    Golden("groups2", _e2e("groups2", "tiny-groups2", 16), True),
    Golden("seq13", _e2e("seq13", "tiny", 13), True),
    Golden("padded", _e2e("padded", "tiny", 16, pad=5), False),
    Golden("dynamo", _e2e("dynamo", "tiny", 16, pad=3, exporter="dynamo"), False),
    Golden("albert-base", _e2e("base", "albert-base", 128, pad=7), False),
    Golden("compressed-ee-dvfs", compressed, False),
    Golden("ee-loop-dvfs", ee_loop, False),
    Golden("multitask-sram-dvfs", multitask, False),
    Golden("multitask-envm", multitask_envm, False),
    *(Golden(f"asm-{n}", _asm(n), True) for n in sorted(p.stem for p in (REPO / "examples" / "asm").glob("*.s"))),
]


def sha256(path: Path) -> str:
    """SHA-256 of the `.ebin` re-written without `source_model_sha256`: that key hashes the ONNX file, whose bytes
    are the exporter's business (the dynamo exporter embeds the source paths of the model code, so the checkout's
    location), not the compiler's. Everything the compiler produces stays covered."""
    program = load_ebin(path)
    program.metadata.pop("source_model_sha256", None)
    return hashlib.sha256(write_ebin(program)).hexdigest()


def build_hashes(names: list[str], keep: Path | None) -> dict[str, str]:
    """name -> SHA-256 of the program built in a fresh directory (or `keep`)."""
    by_name = {g.name: g for g in PROGRAMS}
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = {}
        for name in names:
            d = work / name
            d.mkdir(exist_ok=True)
            out[name] = sha256(by_name[name].build(d))
        return out


def selected(only: list[str] | None, fast: bool) -> list[str]:
    names = [g.name for g in PROGRAMS if g.fast or not fast]
    if only:
        unknown = sorted(set(only) - {g.name for g in PROGRAMS})
        if unknown:
            raise SystemExit(f"golden_programs: unknown program(s) {unknown}; see `golden_programs.py list`")
        names = [n for n in names if n in only]
    return names


def check(names: list[str], keep: Path | None) -> list[str]:
    """The programs whose bytes differ from the manifest (or are missing from it)."""
    want = json.loads(MANIFEST.read_text())["programs"]
    got = build_hashes(names, keep)
    return [n for n in names if want.get(n) != got[n]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="golden_programs", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("record", "check", "list"),
                   help="record the programs' hashes, check them against programs.json, or list them")
    p.add_argument("--only", action="append", metavar="NAME", help="only this program (repeatable)")
    p.add_argument("--fast", action="store_true", help="only the cheap subset the test suite checks")
    p.add_argument("--keep", type=Path, metavar="DIR", help="build in DIR and keep the models and programs")
    args = p.parse_args(argv)
    if args.command == "list":
        for g in PROGRAMS:
            print(f"{g.name:22s} {'fast' if g.fast else 'full'}  {(g.build.__doc__ or '').splitlines()[0]}")
        return 0
    names = selected(args.only, args.fast)
    if args.command == "record":
        data = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"programs": {}}
        data["programs"].update(build_hashes(names, args.keep))
        data["programs"] = {g.name: data["programs"][g.name] for g in PROGRAMS if g.name in data["programs"]}
        MANIFEST.parent.mkdir(parents=True, exist_ok=True)
        MANIFEST.write_text(json.dumps(data, indent=2) + "\n")
        print(f"golden_programs: recorded {len(names)} program(s) in {MANIFEST.relative_to(REPO)}")
        return 0
    bad = check(names, args.keep)
    for name in bad:
        print(f"golden_programs: {name}: the .ebin differs from the recorded one", file=sys.stderr)
    if not bad:
        print(f"golden_programs: {len(names)} program(s) byte-identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
