"""Bounded fuzzing campaigns (seconds each): every mutant ends in a result or one EdgebertError, never an escape.

The long runs are `python scripts/fuzz.py` (docs/emulator.md, README); these keep every campaign exercised in CI.
"""

from __future__ import annotations

import pytest
from campaigns import CAMPAIGNS

#: Mutants per campaign in CI (a few seconds each on the shared 2-core machine).
CI_COUNTS = {"ebin": 150, "asm": 120, "meta": 150, "onnx": 12, "inputs": 60, "cli": 80, "hw": 60}


@pytest.mark.parametrize("name", sorted(CAMPAIGNS))
def test_campaign_has_no_escapes(name: str) -> None:
    campaign, _ = CAMPAIGNS[name]
    tally = campaign(CI_COUNTS.get(name, 20), 2026, None)
    assert tally.runs == CI_COUNTS.get(name, 20)
    assert tally.clean > 0 and tally.errors > 0, tally.line()  # the mutants reach both outcomes
    details = "\n".join(f"{e.kind}: {e.message}\n{e.trace}" for e in tally.escapes[:3])
    assert not tally.escapes, f"{tally.line()}\n{details}"


def test_fuzz_script_runs_counts_and_reports(capsys) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("fuzz_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    counts = ["--ebin", "5", "--asm", "3", "--meta", "3", "--onnx", "0", "--inputs", "3", "--cli", "3", "--hw", "3"]
    assert script.main(counts) == 0
    out = capsys.readouterr().out
    assert "total         20 mutants  0 escapes" in out and "onnx" not in out
