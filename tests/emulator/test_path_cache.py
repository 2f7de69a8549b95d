"""The per-path replay cache (emulator/bench/path_cache.py): cached and uncached timing-only replays agree number for
number (the SST-2 trace through a compiled 12-layer early-exit + DVFS program, random traces in every switch
combination, race checks on; the oracle's runs at their points too), one emulation per path, and whatever it cannot
predict is emulated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from compiled_ee import export_compressed, sentences

from edgebert.compiler.early_exit import EarlyExitOptions
from edgebert.compiler.pipeline import compile_onnx
from edgebert.emulator.bench import run_bench
from edgebert.emulator.bench.path_cache import ReplayRunner
from edgebert.emulator.runner import Runner
from edgebert.isa.errors import EmulatorTrap
from edgebert.isa.traces import read_entropy_trace

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "edgebert-sst2"
LAYERS, THRESHOLD, TARGET_S = 12, 0.23, 40e-6  # the target: ~1.8x the all-fastest 12-layer latency


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory):
    """A compressed 12-layer ALBERT (hidden 32) compiled with early exit and latency-aware DVFS planned from a
    predictor table (the SST-2 one when the shared data is there, else one built from a random trace)."""
    onnx = export_compressed(tmp_path_factory.mktemp("pc") / "tiny12.onnx", LAYERS, THRESHOLD)
    table = DATA / "sst2_lookup_table.csv"
    opts = (EarlyExitOptions(THRESHOLD, TARGET_S, table) if table.exists()
            else EarlyExitOptions(THRESHOLD, TARGET_S, calibration_entropies=_random_trace(200, seed=1)))
    return compile_onnx(onnx, early_exit=opts).program


def _random_trace(n: int, seed: int) -> np.ndarray:
    """Entropies on a 0.01 grid (so sentences share paths), some exactly at the threshold."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(0.0, 0.8, size=(n, LAYERS)), 2)


def _without_wall_time(result: dict) -> str:
    return json.dumps({k: v for k, v in result.items() if k not in ("wall_seconds", "path_cache")}, sort_keys=True)


def _bench_both_ways(program, rows) -> tuple[dict, dict]:
    sentences_ = [{"entropies": r} for r in rows]
    hw = Runner(program).hw
    cached = run_bench(program, hw, sentences_, timing_only=True, target_s=TARGET_S)
    plain = run_bench(program, hw, sentences_, timing_only=True, target_s=TARGET_S, path_cache=False)
    return cached, plain


@pytest.mark.skipif(not (DATA / "sst2_eval_entropy.txt").exists(), reason="shared data absent")
def test_sst2_replay_cached_equals_uncached_number_for_number(program) -> None:
    rows = read_entropy_trace(DATA / "sst2_eval_entropy.txt")
    cached, plain = _bench_both_ways(program, rows)
    assert _without_wall_time(cached) == _without_wall_time(plain)  # every per-sentence latency, energy, cycle count
    stats = cached["path_cache"]
    assert stats["disabled"] == "" and stats["emulated"] + stats["cached"] == 3 * len(rows)
    assert stats["emulated"] < 0.05 * 3 * len(rows)  # ~70 paths in 2,616 runs
    assert plain["path_cache"] is None


def test_random_trace_cached_equals_uncached(program) -> None:
    cached, plain = _bench_both_ways(program, _random_trace(300, seed=2))
    assert _without_wall_time(cached) == _without_wall_time(plain)
    assert cached["path_cache"]["cached"] > cached["path_cache"]["emulated"]


@pytest.mark.parametrize("no_exit", [False, True])
@pytest.mark.parametrize("no_dvfs", [False, True])
def test_every_switch_and_race_checks(program, no_exit: bool, no_dvfs: bool) -> None:
    """Race checks on every run (the lut's bin is then part of the signature) and each what-if switch."""
    replay, runner = ReplayRunner(program), Runner(program)
    for row in _random_trace(60, seed=3):
        kw = dict(entropy_values=row, timing_only=True, disable_early_exit=no_exit, disable_dvfs=no_dvfs)
        got, want = replay.run(**kw), runner.run(**kw)
        assert got.report == want.report and got.exit_layer == want.exit_layer
    assert replay.stats["cached"] > 0 and replay.stats["disabled"] == ""


def test_unpredictable_runs_are_emulated(program) -> None:
    replay, runner = ReplayRunner(program), Runner(program)
    row = [0.9] * LAYERS  # never exits: consumes all 12 entropies
    replay.run(entropy_values=row, timing_only=True)
    # a shorter trace takes the same path prefix but would run out of entropies: emulated, same trap
    with pytest.raises(EmulatorTrap, match="entropy trace exhausted") as cached:
        replay.run(entropy_values=row[:5], timing_only=True)
    with pytest.raises(EmulatorTrap) as direct:
        runner.run(entropy_values=row[:5], timing_only=True)
    assert str(cached.value) == str(direct.value)
    # NaN cannot be binned by the walk: emulated (the program traps in `lut`, as without the cache)
    with pytest.raises(EmulatorTrap, match="lut of NaN"):
        replay.run(entropy_values=[math.nan] + row[1:], timing_only=True)
    # real inputs (full numerics): never from the cache
    before = replay.stats["emulated"]
    x = sentences(1)[0]
    got = replay.run(x, entropy_values=row, timing_only=False)
    assert got.report == runner.run(x, entropy_values=row).report and replay.stats["emulated"] == before + 1
    assert replay.stats["paths"] == 1 and replay.stats["disabled"] == ""
