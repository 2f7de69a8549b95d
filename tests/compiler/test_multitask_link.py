"""Multi-task linking pieces: head padding keeps the entropy, constants split by content, layout mismatch errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.compiler.link import link_tasks, split_constants
from edgebert.compiler.multitask import PAD_LOGIT
from edgebert.compiler.tile_ir import TileProgram
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
    p = TileProgram()
    for i, c in enumerate(consts):
        p.buffer(f"c{i}", len(c), "const", "envm", c)
    return p


def test_split_constants_by_content():
    shared, own = split_constants([_prog(b"backbone", b"a-task", b"x"), _prog(b"b-task", b"backbone", b"y")])
    assert len(shared) == 1
    assert [b.data for b in own[0]] == [b"a-task", b"x"] and [b.data for b in own[1]] == [b"b-task", b"y"]


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
