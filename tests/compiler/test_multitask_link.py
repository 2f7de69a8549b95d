"""Multi-task linking pieces: head padding keeps the entropy, constants split by position, layout mismatch errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.compiler.link import link_tasks, split_constants
from edgebert.compiler.multitask import PAD_LOGIT
from edgebert.compiler.tile_ir import TileInst, TileProgram
from edgebert.emulator.sfu import entropy_of
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import default_config


def test_padded_logits_keep_the_entropy():
    rng = np.random.default_rng(0)
    for n in (2, 3):
        x = rng.normal(0, 3, n).astype(np.float32)
        padded = np.concatenate([x, np.full(5 - n, PAD_LOGIT, np.float32)])
        assert entropy_of(padded) == entropy_of(x)


def _prog(*consts: bytes) -> TileProgram:
    """One `ld` per constant operand, in order; equal bytes are one buffer (as the compiler deduplicates)."""
    p = TileProgram()
    bufs: dict[bytes, object] = {}
    for c in consts:
        if c not in bufs:
            bufs[c] = p.buffer(f"c{len(bufs)}", len(c), "const", "envm", c)
        p.insts.append(TileInst("ld", {}, {"src": (bufs[c], 0)}))
    return p


def test_split_constants_by_position():
    """Same bytes at an operand position in every task: shared; else a task entry, in position order."""
    shared, own = split_constants([_prog(b"backbone", b"a-task", b"x"), _prog(b"backbone", b"b-task", b"y")],
                                  ["a", "b"])
    assert len(shared) == 1
    assert [b.data for b in own[0]] == [b"a-task", b"x"] and [b.data for b in own[1]] == [b"b-task", b"y"]


def test_equal_tensors_inside_one_task_get_one_entry_each():
    """Task a stores two equal tensors once (one buffer at two positions), task b has two: still two entries each;
    a's second position reads a copy."""
    a, b = _prog(b"backbone", b"zero", b"zero"), _prog(b"backbone", b"p123", b"q123")
    shared, own = split_constants([a, b], ["a", "b"])
    assert len(shared) == 1
    assert [x.data for x in own[0]] == [b"zero", b"zero"] and own[0][0] is not own[0][1]
    assert [x.data for x in own[1]] == [b"p123", b"q123"]
    assert a.insts[1].addrs["src"][0] is own[0][0] and a.insts[2].addrs["src"][0] is own[0][1]
    # a position where every task reads the same bytes, next to a use of that buffer as a task entry: copied too
    c, d = _prog(b"same", b"same"), _prog(b"same", b"diff")
    shared, own = split_constants([c, d], ["c", "d"])
    assert len(shared) == 1 and [x.data for x in own[0]] == [b"same"] and own[0][0] is c.insts[1].addrs["src"][0]
    assert c.insts[0].addrs["src"][0] is not own[0][0]


def test_task_programs_must_read_constants_at_the_same_instructions():
    with pytest.raises(CompileError, match="task 'b' reads constants at other instructions than task 'a'"):
        split_constants([_prog(b"x", b"y"), _prog(b"x")], ["a", "b"])


class _Task:
    def __init__(self, name: str) -> None:
        self.name, self.threshold, self.num_labels, self.label_names = name, None, 2, []


class _Result:
    def __init__(self, prog: TileProgram) -> None:
        self.tile_program, self.sram_peak_bytes, self.token_pairs = prog, 0, 0
        from edgebert.isa.program import Program

        self.program = Program(code=[])


def test_task_layouts_must_match():
    a, b = _prog(b"backbone", b"1234"), _prog(b"backbone", b"12345678")
    with pytest.raises(CompileError, match="task 'b' has task-specific weights of other shapes than task 'a'"):
        link_tasks([_Task("a"), _Task("b")], [_Result(a), _Result(b)], default_config())
