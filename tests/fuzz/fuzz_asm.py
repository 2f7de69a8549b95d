"""Assembly campaign: token- and line-level mutants of real sources through the assembler, the `.ebin` writer and
reader, and the disassembler round trip."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from fuzz_ebin import round_trip
from fuzz_engine import SEEDS, Tally, drive, guarded
from hypothesis import strategies as st

from edgebert.isa.assembler import assemble
from edgebert.isa.ebin import read_ebin, write_ebin
from edgebert.isa.table import INSTRUCTIONS

_TOKEN = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|[A-Za-z_.][A-Za-z0-9_.]*|0[xXbB][0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\S")

#: Replacement tokens: the values and spellings most likely to break a parser or a message.
TOKENS = [
    "9" * 5000, "0x" + "f" * 3000, "0b" + "1" * 200, "18446744073709551617", "-0", "0", "1", "4294967296", "-1",
    "65536", "2147483648", "1e999", "-1e-999", "nan", "-inf", "f32(0x1ffffffff)", "f32(0x" + "f" * 900 + ")",
    "f32(0x7fc00001)", "r0", "r1", "r15", "r16", "r" + "9" * 4400, "f0", "f7", "f8", "f" + "7" * 5000, "halt", "nop",
    "rows", "cols", "wait", "dram", "envm", "sram", "code", "ld|pu", "ctl", "\ud800", "\udfff", "é", "\u2028",
    "\x00", "\t", ":", ",", "[", "]", "=", "+", "-", "*", "(", ")", "#", ";", '"', '"\\ud800"', '"\\u0000"',
    '"a\\nb"', "r1:", "f3:", ".L1", ".Lx", ".L1:", "1:", "x:", "_:", "a.b", "loop", "done", "EMB", "W",
    "[r1 + 0x40]", "dram[r2]", "sram[0xfffffff0]", "envm[" + "1" * 40 + "]",
]
LINES = [
    ".zero 99999999", ".zero 67108864", ".align 3", ".align 1048576", '.data dram, 0xffffffff, "x"',
    '.data sram, 0xfffffff0', '.npy "/dev/zero"', '.npy "/dev/stdin"', '.npy "../../../etc/hostname"',
    '.npy "."', ".equ BIG, 0x" + "f" * 16 + " * 0x" + "f" * 16, ".equ X, (" * 300 + "1" + ")" * 300,
    ".meta inputs, [{\"name\": \"x\", \"space\": \"dram\", \"address\": 0, \"shape\": [-1]}]",
    ".meta outputs, [{\"name\": \"y\", \"space\": \"dram\", \"address\": 4294967295, \"shape\": [4294967295]}]",
    '.meta exit_layer, {"space": "dram"}', ".meta x, 1e400", '.meta "\\ud800", 1', ".meta y, " + "[" * 5000,
    ".sym r1, code, 0", ".sym halt, code, 1", ".sym Z, dram, 0x" + "f" * 20, ".size EMB, -1", ".hw " + "0" * 64,
    ".hwdefault", ".text", ".data envm", "r1: nop", "f2: halt", "halt: nop", "dram: nop", ".L9: jmp .L9",
    "jmp 16777215", "li r1, 0x" + "f" * 9, "vadd [0], [0], [0], rows=65535, cols=65535",
    "gather [0], dram[0], [0], rows=1, cols=0", "entropy f1, [0], n=0", "lut r1, f0, dram[0], nbins=0",
    "dvfs 255", "matmul [0], [0], [0], m=0, k=0, n=0, sparse=1",
]


@cache
def seed_texts() -> tuple[tuple[str, Path], ...]:
    """(source, folder) of each seed (`.npy` paths are relative to the folder)."""
    examples = SEEDS.parents[2] / "examples" / "asm"
    paths = [SEEDS / "encoder.s", *(examples / n for n in ("early_exit.s", "softmax_layernorm.s"))]
    return tuple((p.read_text(), p.parent) for p in paths if p.is_file())


def mutate_text(data: Any, text: str) -> str:
    lines = text.split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["token", "token", "token", "line", "delete", "duplicate", "swap", "chars",
                                        "instruction"]))
        i = data.draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            lines = [""]
        if op == "token":
            tokens = list(_TOKEN.finditer(lines[i]))
            if tokens:
                m = data.draw(st.sampled_from(tokens))
                new = data.draw(st.sampled_from(TOKENS) | st.text(max_size=4))
                lines[i] = lines[i][: m.start()] + new + lines[i][m.end() :]
        elif op == "line":
            lines.insert(i, data.draw(st.sampled_from(LINES)))
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "chars":
            at = data.draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + data.draw(st.text(min_size=1, max_size=6)) + lines[i][at:]
        else:
            spec = data.draw(st.sampled_from(INSTRUCTIONS))
            lines.insert(i, f"    {spec.mnemonic} " + ", ".join(data.draw(st.lists(st.sampled_from(TOKENS), max_size=4))))
    return "\n".join(lines)


def assemble_and_round_trip(text: str, folder: Path) -> None:
    program = assemble(text, "<mutant>", folder)
    loaded = read_ebin(write_ebin(program), "<mutant>")
    round_trip(loaded)


def campaign_asm(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Mutated assembly sources: assemble, write, read back, round-trip the disassembly."""
    texts = seed_texts()
    tally = Tally("asm")

    def body(data: Any) -> None:
        source, folder = texts[data.draw(st.integers(0, len(texts) - 1))]
        text = mutate_text(data, source)
        guarded(tally, text.encode("utf-8", "surrogatepass"), ".s", lambda: assemble_and_round_trip(text, folder))

    return drive(tally, body, count, seed, deadline)
