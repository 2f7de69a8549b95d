"""Random instruction streams never end in anything but a result or one clear EdgebertError."""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.emulator import run
from edgebert.isa.encoding import Inst, make
from edgebert.isa.errors import EdgebertError
from edgebert.isa.program import Program, Segment
from edgebert.isa.table import INSTRUCTIONS, Kind

SMALL = {"rows", "cols", "m", "k", "n", "nbins", "span", "ramp", "row0", "col0"}


def _random_inst(rng: np.random.Generator, n_code: int) -> Inst:
    spec = INSTRUCTIONS[rng.integers(len(INSTRUCTIONS))]
    values = {}
    for f in spec.fields[1:]:
        lo, hi = f.value_range()
        if f.name in SMALL:
            hi = min(hi, 24)
        elif f.name.endswith("stride"):
            hi = min(hi, 40)
        elif f.kind is Kind.ADDR:
            hi = min(hi, 0x3000)  # mostly inside the preloaded SRAM window, sometimes unaligned
        elif f.kind is Kind.TARGET:
            hi = n_code + 1
        elif f.kind is Kind.UNITS:
            hi = 0 if rng.random() < 0.8 else hi
        elif f.kind is Kind.F32:
            values[f.name] = int(np.float32(rng.normal(0, 4)).view(np.uint32))
            continue
        elif f.kind is Kind.SIMM:
            lo, hi = -64, 64
        values[f.name] = int(rng.integers(lo, hi + 1))
    return make(spec.mnemonic, **values)


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_run_or_trap_cleanly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    code = [_random_inst(rng, n) for _ in range(n)] + [make("halt")]
    data = rng.normal(0, 2, 0x4000 // 4).astype(np.float32).tobytes()
    ints = rng.integers(0, 8, 64, dtype=np.int32).tobytes()
    prog = Program(code, [Segment("sram", 0, data), Segment("sram", 0x4000, ints), Segment("dram", 0, data)])
    try:
        result = run(prog, {}, max_cycles=200_000, raise_on_trap=False)
    except EdgebertError:
        return
    assert result.report["cycles"] >= 0
    if result.trap is not None:
        assert str(result.trap).startswith("pc ") and "internal emulator error" not in str(result.trap)
