"""The registry of fuzzing campaigns: name -> (function(count, seed, deadline) -> Tally, default count).

scripts/fuzz.py derives one `--NAME N` option per entry; a new campaign is one more
entry here whose function takes (count, seed, deadline) and returns a `fuzz_engine.Tally`.
"""

from __future__ import annotations

from collections.abc import Callable

from fuzz_asm import campaign_asm
from fuzz_cli import campaign_cli, campaign_inputs
from fuzz_ebin import campaign_ebin, campaign_meta
from fuzz_engine import Tally
from fuzz_hw import campaign_hw
from fuzz_onnx import campaign_onnx

Campaign = Callable[[int, int, float | None], Tally]

CAMPAIGNS: dict[str, tuple[Campaign, int]] = {
    "ebin": (campaign_ebin, 100_000),
    "asm": (campaign_asm, 20_000),
    "meta": (campaign_meta, 5_000),
    "onnx": (campaign_onnx, 300),
    "inputs": (campaign_inputs, 500),
    "cli": (campaign_cli, 2_000),
    "hw": (campaign_hw, 2_000),
}
