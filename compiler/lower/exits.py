"""The exit code of early exit and latency-aware DVFS: what runs after exit head k's logits, and the shared exit path.

Program start with DVFS: `lw r6, point_table[1]; dvfsr r6` (the prologue and layer 1 at the plan's layer-1 point).
Unrolled layers (`after_head`, after head k's logits):

    vmov   exit.logits, head_k          ; the common exit buffer (the program output `logits`)
    entropy f1, head_k                  ; natural-log entropy of the logits row
    li     r3, k                        ; exit layer (1-based)
    barrier                             ; no tokens cross a branch
    bexit  f1, threshold, ee.exit, cmp  ; k < L (cmp: lt or le, the spec's comparison)
    [k = 1, predictor: lut r4 <- exit_table[bin(f1)];
        DVFS: r5 = 4 r4; lw r6, point_table[r5] (bins planner: lut r6 <- bin_table[fine(f1)]); dvfsr r6]
    [1 < k < L, forced: bexitp r3, r4, ee.exit         (the exit forced at the prediction)
                recover + DVFS: if r4 == k: lw r6, recovery_table[r5]; dvfsr r6]

Looped (`loop_exit`, inside the one layer loop, compiler/lower/exit_loop.py): the same keyed on r1 (r3 = r1 + 1, the
last layer skips the entropy, the prediction runs when r1 == 0). `finish`: the exit path every exit jumps to (the
last layer falls through into it): `ee.exit: sw r3 -> exit word; st output.logits <- exit.logits`. Registers:
isa/abi.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebert.compiler import emitters as em
from edgebert.compiler.early_exit import EarlyExitSpec
from edgebert.compiler.lower.core import Lowerer, Scope, Step, Tensor, Value
from edgebert.compiler.tile_ir import Buffer, Ref, TileInst, TileProgram
from edgebert.compiler.views import fresh_view
from edgebert.isa.abi import (
    DVFS_BIN_TABLE,
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
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError
from edgebert.isa.table import BIN_MODES, EXIT_COMPARES


class ExitCode:
    """Emits the exit code of a model with exit heads into `prog` (the exit word, the predictor and DVFS tables, and
    the switch to the layer-1 operating point at construction)."""

    def __init__(self, spec: EarlyExitSpec, prog: TileProgram) -> None:
        self.spec, self.prog = spec, prog
        self.L = len(spec.heads)
        self.logits: Buffer | None = None
        self.num_labels = 0
        self.exit_word = prog.buffer(EXIT_WORD, 4, "output", "dram")
        self.tables: dict[str, Buffer] = {}
        if spec.exit_table is not None:
            self.tables["exit"] = prog.constant(DVFS_TABLES[0], np.ascontiguousarray(spec.exit_table, dtype="<i4"))
        if spec.dvfs is not None:
            d = spec.dvfs
            for key, name, arr in (("point", DVFS_TABLES[1], d.point_table), ("recovery", DVFS_TABLES[2],
                                                                              d.recovery_table),
                                   ("bins", DVFS_BIN_TABLE, d.bin_table)):
                if arr is not None:
                    self.tables[key] = prog.constant(name, np.ascontiguousarray(arr, dtype="<i4"))
            # the prologue and layer 1 run at the plan's layer-1 point, point_table[1]
            prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_ZERO}, {"src": (self.tables["point"], 4)}))
            prog.emit(TileInst("dvfsr", {"rs": R_TMP}))

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
        self.prog.emit(TileInst("bexit", {"fs": F_ENTROPY, "threshold": f32_bits(self.spec.threshold),
                                          "cmp": EXIT_COMPARES.index(self.spec.compare)}, target=EXIT_LABEL))

    def _after_prediction(self, skip: str) -> None:
        """After layer k > 1's entropy exit: the forced exit at the prediction, or the recovery switch when the
        prediction was low (r4 == r3); `skip` labels what follows."""
        prog = self.prog
        if self.spec.policy == "forced":
            prog.emit(TileInst("bexitp", {"rs1": R_EXIT, "rs2": R_PRED}, target=EXIT_LABEL))
        elif self.spec.dvfs is not None:
            prog.emit(TileInst("bne", {"rs1": R_PRED, "rs2": R_EXIT}, target=skip))
            prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (self.tables["recovery"], 0)}))
            prog.emit(TileInst("dvfsr", {"rs": R_TMP}))
        prog.label(skip)

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
        if self.spec.exit_table is None:
            return
        if k == 1:
            _emit_prediction(prog, self.spec, self.tables)
        else:
            self._after_prediction(f"ee.recovered{k}")

    def loop_exit(self, value: Value, low: Lowerer) -> None:
        """Exit code inside the layer loop after the head's logits: r3 = r1 + 1, the prediction keyed on r1."""
        prog = self.prog
        n = self._copy_logits(value, low, "exit", "exit heads")
        prog.emit(TileInst("addi", {"rd": R_EXIT, "rs1": R_LAYER, "imm": 1}))  # R_LAYER = layers done before this one
        prog.emit(TileInst("barrier"))
        prog.emit(TileInst("beq", {"rs1": R_EXIT, "rs2": R_LAYER_LIMIT}, target="ee.last"))  # the last: no entropy
        self._entropy(n)
        self._exit_branch()
        if self.spec.exit_table is None:
            prog.label("ee.last")
            return
        prog.emit(TileInst("bne", {"rs1": R_LAYER, "rs2": R_ZERO}, target="ee.predicted"))  # predict after layer 1 only
        _emit_prediction(prog, self.spec, self.tables)
        prog.label("ee.predicted")
        self._after_prediction("ee.last")

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


def _emit_prediction(prog: TileProgram, spec: EarlyExitSpec, tables: dict[str, Buffer]) -> None:
    """Layer 1's entropy -> predicted exit layer (`lut` into R_PRED) and, with DVFS, its byte offset R_OFF and the
    switch to the sentence's operating point: point_table[R_OFF] (table planner) or the bins planner's second `lut`
    (the artifact's DVFS bin of the entropy)."""
    prog.emit(TileInst("lut", {"rd": R_PRED, "fs": F_ENTROPY, "nbins": spec.lut_nbins, "scale": f32_bits(spec.lut_scale),
                               "mode": BIN_MODES.index(spec.lut_mode)}, {"table": (tables["exit"], 0)}))
    d = spec.dvfs
    if d is None:
        return
    prog.emit(TileInst("li", {"rd": R_TMP, "imm": 4}))
    prog.emit(TileInst("mul", {"rd": R_OFF, "rs1": R_PRED, "rs2": R_TMP}))
    if d.bin_table is not None:
        prog.emit(TileInst("lut", {"rd": R_TMP, "fs": F_ENTROPY, "nbins": int(d.bin_table.size),
                                   "scale": f32_bits(d.bins_lut_scale), "mode": BIN_MODES.index("floor")},
                           {"table": (tables["bins"], 0)}))
    else:
        prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (tables["point"], 0)}))
    prog.emit(TileInst("dvfsr", {"rs": R_TMP}))


class ExitHeadStep(Step):
    """After the binding of head k's logits (unrolled layers): its exit code."""

    def __init__(self, exits: ExitCode, k: int, var: Any) -> None:
        self.exits, self.k, self.var = exits, k, var

    def lower(self, scope: Scope) -> None:
        self.exits.after_head(self.k, scope.env[self.var], scope.low)
