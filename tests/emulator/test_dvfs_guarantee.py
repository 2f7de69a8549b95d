"""The DVFS plan's guarantee measured on a compiled program: every (predicted, actual) exit pair within the target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from compiled_ee import compile_planned, export_compressed

from edgebert.compiler.dvfs_plan import LayerCycles, sentence_latency_s
from edgebert.emulator import Runner
from edgebert.isa.hardware import default_config

LAYERS, THRESHOLD = 12, 0.05


def test_every_predicted_and_actual_exit_in_the_emulator(tmp_path: Path) -> None:
    """12 layers (ALBERT-base's depth), every bin predicting some layer 2..12, a target 1.29x the all-fastest
    latency (ALBERT-base: 40 ms vs 31 ms): each sentence the fastest point finishes in time also does with DVFS,
    and the planner's additive cycle model tracks the emulator within 1 %."""
    hw = default_config()
    exits = (2 + np.arange(100) * (LAYERS - 1) // 100).astype(np.int32)
    onnx = export_compressed(tmp_path / "l12.onnx", LAYERS, THRESHOLD)
    program = compile_planned(onnx, THRESHOLD, exits, LAYERS, 1.29)
    plan = program.metadata["dvfs_table"]
    target, cycles = plan["target_s"], LayerCycles(**plan["cycles"])
    assert plan["exit_table"] == exits.tolist()
    runner = Runner(program, hw)
    worst, slowed = 0.0, False
    for p in range(2, LAYERS + 1):
        h1 = (np.flatnonzero(exits == p)[-1] + 0.2) / 100  # a layer-1 entropy (>= threshold) in a bin predicting p
        for e in range(1, LAYERS + 1):
            ent = [0.5] * LAYERS
            ent[0] = h1 if e > 1 else 0.01
            ent[e - 1] = 0.01 if e > 1 else ent[e - 1]
            res = runner.run(entropy_values=ent, timing_only=True, check_races=False)
            assert res.exit_layer == e
            fast = runner.run(entropy_values=ent, timing_only=True, disable_dvfs=True, check_races=False)
            if fast.report["seconds"] <= target:
                assert res.report["seconds"] <= target, (p, e)
            if e > 1:
                q, r = plan["point_table"][p], plan["recovery_table"][p]
                slowed |= q != plan["fastest"]
                model = sentence_latency_s(hw, cycles, plan["fastest"], q, r, p, e)
                worst = max(worst, abs(res.report["seconds"] - model) / model)
    assert slowed  # the target leaves slack: some predictions run below the fastest point
    assert worst < 0.01  # the additive cycle model tracks the emulator within 1 %
