"""The exit code of early exit and latency-aware DVFS: what runs after exit head k's logits, and the shared exit path.

Unrolled layers (`after_head`, after head k's logits):

    vmov   exit.logits, head_k          ; the common exit buffer (the program output `logits`)
    entropy f1, head_k                  ; natural-log entropy of the logits row
    li     r3, k                        ; exit layer (1-based)
    barrier                             ; no tokens cross a branch
    bexit  f1, threshold, ee.exit       ; k < L
    [k = 1, DVFS: lut r4 <- bin(f1); r5 = 4 r4; lw r6, point_table[r5]; dvfsr r6]
    [1 < k < L, DVFS: if r4 == k: lw r6, recovery_table[r5]; dvfsr r6]

Looped (`loop_exit`, inside the one layer loop, compiler/lower/exit_loop.py): the same keyed on r1 (r3 = r1 + 1, the
last layer skips the entropy, the prediction runs when r1 == 0). `finish`: the exit path every exit jumps to (the
last layer falls through into it): `ee.exit: sw r3 -> exit word; st output.logits <- exit.logits`. Registers:
compiler/abi.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.abi import (
    DVFS_TABLES,
    EXIT_LABEL,
    EXIT_LOGITS,
    EXIT_WORD,
    F_ENTROPY,
    R_EXIT,
    R_LAYER,
    R_LAYER_LIMIT,
    R_OFF,
    R_PRED,
    R_TMP,
    R_ZERO,
)
from edgebert.compiler.early_exit import DvfsTables, EarlyExitSpec
from edgebert.compiler.lower.core import Lowerer, Scope, Step, Tensor, Value
from edgebert.compiler.tile_ir import Buffer, Ref, TileInst, TileProgram
from edgebert.compiler.views import fresh_view
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError
from edgebert.isa.table import BIN_MODES


class ExitCode:
    """Emits the exit code of a model with exit heads into `prog` (the exit word and DVFS tables at construction)."""

    def __init__(self, spec: EarlyExitSpec, prog: TileProgram) -> None:
        self.spec, self.prog = spec, prog
        self.L = len(spec.heads)
        self.logits: Buffer | None = None
        self.num_labels = 0
        self.exit_word = prog.buffer(EXIT_WORD, 4, "output", "dram")
        self.tables: list[Buffer] = []
        if spec.dvfs is not None:
            d = spec.dvfs
            for name, arr in zip(DVFS_TABLES, (d.exit_table, d.point_table, d.recovery_table), strict=True):
                self.tables.append(prog.constant(name, np.ascontiguousarray(arr, dtype="<i4")))
            if d.initial != d.fastest:
                prog.emit(TileInst("dvfs", {"point": d.fastest}))

    def _copy_logits(self, value: Value, low: Lowerer, what: str, head: str) -> int:
        """Copy one row of logits into the exit buffer (made on first use); returns the label count."""
        t = low.to_sram(value, what)
        n = int(np.prod(t.shape))
        src = t.view.reshape((1, n))
        if t.shape[-1] != n or src is None:
            raise CompileError(f"{head} must give one row of logits, got shape {t.shape}")
        if self.logits is None:
            self.num_labels = n
            self.logits = self.prog.buffer(EXIT_LOGITS, n * 4, "act")
            low.pinned.add(id(self.logits))
        elif n != self.num_labels:
            raise CompileError(f"exit heads give {self.num_labels} and {n} logits: they must agree")
        em.emit_unary(self.prog, "vmov", fresh_view(self.logits, (1, n), "f32"), src)
        return n

    def _entropy(self, n: int) -> None:
        self.prog.emit(TileInst("entropy", {"fd": F_ENTROPY, "n": n}, {"src": (self.logits, 0)},
                                [Ref(self.logits, 0, n * 4, False)]))

    def _exit_branch(self) -> None:
        self.prog.emit(TileInst("barrier"))
        self.prog.emit(TileInst("bexit", {"fs": F_ENTROPY, "threshold": f32_bits(self.spec.threshold)},
                                target=EXIT_LABEL))

    def after_head(self, k: int, value: Value, low: Lowerer) -> None:
        """Exit code after head k's logits, layers unrolled (module docstring)."""
        prog = self.prog
        n = self._copy_logits(value, low, f"exit_{k}", f"exit head '{self.spec.heads[k - 1]}'")
        if k < self.L:
            self._entropy(n)
        prog.emit(TileInst("li", {"rd": R_EXIT, "imm": k}))
        if k == self.L:
            return
        self._exit_branch()
        if self.spec.dvfs is None:
            return
        exit_t, point_t, rec_t = self.tables
        if k == 1:
            _emit_prediction(prog, self.spec.dvfs, exit_t, point_t)
        else:
            skip = f"ee.recovered{k}"
            prog.emit(TileInst("li", {"rd": R_TMP, "imm": k}))
            prog.emit(TileInst("bne", {"rs1": R_PRED, "rs2": R_TMP}, target=skip))
            prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (rec_t, 0)}))
            prog.emit(TileInst("dvfsr", {"rs": R_TMP}))
            prog.label(skip)

    def loop_exit(self, value: Value, low: Lowerer) -> None:
        """Exit code inside the layer loop after the head's logits: r3 = r1 + 1, DVFS keyed on r1 / r3."""
        prog = self.prog
        n = self._copy_logits(value, low, "exit", "exit heads")
        prog.emit(TileInst("addi", {"rd": R_EXIT, "rs1": R_LAYER, "imm": 1}))  # R_LAYER = layers done before this one
        prog.emit(TileInst("barrier"))
        prog.emit(TileInst("beq", {"rs1": R_EXIT, "rs2": R_LAYER_LIMIT}, target="ee.last"))  # the last: no entropy
        self._entropy(n)
        self._exit_branch()
        if self.spec.dvfs is None:
            prog.label("ee.last")
            return
        exit_t, point_t, rec_t = self.tables
        prog.emit(TileInst("bne", {"rs1": R_LAYER, "rs2": R_ZERO}, target="ee.predicted"))  # predict after layer 1 only
        _emit_prediction(prog, self.spec.dvfs, exit_t, point_t)
        prog.label("ee.predicted")
        prog.emit(TileInst("bne", {"rs1": R_PRED, "rs2": R_EXIT}, target="ee.last"))  # r4 == r3: prediction was low
        prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (rec_t, 0)}))
        prog.emit(TileInst("dvfsr", {"rs": R_TMP}))
        prog.label("ee.last")

    def logits_tensor(self) -> Tensor:
        """The exit logits buffer as a lowered tensor (what every exit head's var stands for after the loop)."""
        return Tensor(fresh_view(self.logits, (1, self.num_labels), "f32"), "float32")

    def finish(self) -> tuple[str, Buffer, tuple[int, ...], str]:
        """The shared exit path; returns the `logits` output entry."""
        prog = self.prog
        if self.logits is None:
            raise CompileError("internal: exit heads were not all lowered")
        prog.emit(TileInst("barrier"))
        prog.label(EXIT_LABEL)
        prog.emit(TileInst("sw", {"rs": R_EXIT}, {"dst": (self.exit_word, 0)}))
        out = prog.buffer("output.logits", self.num_labels * 4, "output", "dram")
        em.emit_dma(prog, "st", fresh_view(out, (1, self.num_labels), "f32"),
                    fresh_view(self.logits, (1, self.num_labels), "f32"))
        return ("logits", out, (1, self.num_labels), "float32")


def _emit_prediction(prog: TileProgram, d: DvfsTables, exit_t: Buffer, point_t: Buffer) -> None:
    """Layer 1's entropy -> predicted exit layer (`lut` into R_PRED), its byte offset R_OFF, and the DVFS switch to
    that prediction's operating point (`lw` + `dvfsr`)."""
    prog.emit(TileInst("lut", {"rd": R_PRED, "fs": F_ENTROPY, "nbins": d.nbins, "scale": f32_bits(d.scale),
                               "mode": BIN_MODES.index(d.mode)}, {"table": (exit_t, 0)}))
    prog.emit(TileInst("li", {"rd": R_TMP, "imm": 4}))
    prog.emit(TileInst("mul", {"rd": R_OFF, "rs1": R_PRED, "rs2": R_TMP}))
    prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (point_t, 0)}))
    prog.emit(TileInst("dvfsr", {"rs": R_TMP}))


class ExitHeadStep(Step):
    """After the binding of head k's logits (unrolled layers): its exit code."""

    def __init__(self, exits: ExitCode, k: int, var: Any) -> None:
        self.exits, self.k, self.var = exits, k, var

    def lower(self, scope: Scope) -> None:
        self.exits.after_head(self.k, scope.env[self.var], scope.low)
