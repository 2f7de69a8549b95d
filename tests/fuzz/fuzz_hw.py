"""Hardware-config campaign (issue 14, class 4): mutants of the bundled TOML configs through `parse_config_text`,
and every config that loads runs the seed programs on the emulator. An escape is a traceback, a hang, or a report
with a non-finite number (or one that is not strict JSON)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from fuzz_ebin import FUZZ_MAX_CYCLES, FUZZ_MAX_INSTRUCTIONS, fake_inputs, seed_programs
from fuzz_engine import Tally, check_finite, drive, guarded
from hypothesis import strategies as st

from edgebert.emulator import Runner
from edgebert.isa.hardware import bundled_config_text, bundled_configs, parse_config_text
from edgebert.isa.safe_io import dumps_strict

#: Values a mutated `key = value` line takes: out-of-range, non-finite, mistyped, huge, nested.
VALUES = [
    "0", "1", "-1", "2", "3", "15", "16", "17", "255", "4096", "65535", "1048576", "4294967296", "18446744073709551616",
    "1e308", "-1e308", "1e-308", "0.0", "-0.0", "0.5", "nan", "inf", "-inf", "+inf", "true", "false", '"x"', '""',
    "[]", "[1, 2]", "[[[[[[[[[[1]]]]]]]]]]", "{}", "{ a = 1 }", "1979-05-27", "0x10", "1_000", "99999999999999999999",
]
_ASSIGN = re.compile(r"^(\s*[A-Za-z_][A-Za-z0-9_.]*\s*=\s*)(.*?)(\s*#.*)?$")
_NUMBER = re.compile(r"(?<![A-Za-z_])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def mutate_text(data: Any, text: str) -> str:
    """A few line- and value-level edits of a TOML config (structure-aware), or raw byte damage."""
    lines = text.splitlines()
    for _ in range(data.draw(st.sampled_from([1, 1, 2, 3, 5]))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["value", "value", "value", "number", "drop", "dup", "key", "table", "bytes"]))
        m = _ASSIGN.match(lines[i])
        if op == "value" and m:
            lines[i] = m.group(1) + data.draw(st.sampled_from(VALUES))
        elif op == "number" and _NUMBER.search(lines[i]):
            hits = list(_NUMBER.finditer(lines[i]))
            hit = hits[data.draw(st.integers(0, len(hits) - 1))]
            lines[i] = lines[i][: hit.start()] + data.draw(st.sampled_from(VALUES)) + lines[i][hit.end():]
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "key" and m:
            lines[i] = data.draw(st.sampled_from(["bogus = 1", "pu.lanes = 8", "[pu]", "lanes = 8", "name = 7"]))
        elif op == "table":
            lines.insert(i, data.draw(st.sampled_from(["[pu]", "[memory]", "[[dvfs.points]]", "[sfu.ops.gelu]",
                                                       "[area]", "[x.y.z]"])))
        elif op == "bytes":
            raw = bytearray("\n".join(lines).encode())
            for _ in range(data.draw(st.integers(1, 8))):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
            return raw.decode("utf-8", "surrogateescape")
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def campaign_hw(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Mutated hardware configs: a HardwareConfigError, or a config under which the seed programs run with finite,
    strict-JSON reports."""
    texts = [bundled_config_text(name) for name in bundled_configs()]
    programs = seed_programs()
    tally = Tally("hw")

    def body(data: Any) -> None:
        text = mutate_text(data, data.draw(st.sampled_from(texts)))
        program = data.draw(st.sampled_from(programs))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))

        def target() -> None:
            hw = parse_config_text(text, "<mutant>")
            result = Runner(program, hw, max_cycles=FUZZ_MAX_CYCLES, max_instructions=FUZZ_MAX_INSTRUCTIONS).run(
                fake_inputs(program, rng), raise_on_trap=False)
            check_finite(result.report)
            dumps_strict(result.report)

        guarded(tally, text.encode("utf-8", "surrogateescape"), ".toml", target)

    return drive(tally, body, count, seed, deadline, chunk=200)
