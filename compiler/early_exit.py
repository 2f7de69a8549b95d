"""Early exit and latency-aware DVFS in the tile program: exit head i + `entropy` + `bexit` after layer i.

The compressed model's graph computes every exit head after the encoder; `ExitLowering.reorder` puts the bindings
in demand order (everything exit head 1 needs, then what head 2 still needs, ...), so each head runs right after
its layer. When the layers are one layer function and the heads differ only in weight values, the layers and
heads become ONE loop body (compiler/early_exit_loop.py; `loop_exit` emits the exit code keyed on r1); otherwise
the layers are unrolled (docs/compiler.md, "Early exit and DVFS") and after head k's logits `after_head` emits

    vmov   exit.logits, head_k          ; the common exit buffer (the program output `logits`)
    entropy f1, head_k                  ; natural-log entropy of the logits row
    li     r3, k                        ; exit layer (1-based)
    barrier                             ; no tokens cross a branch
    bexit  f1, threshold, ee.exit       ; k < L
    [k = 1, DVFS: lut r4 <- bin(f1); r5 = 4 r4; lw r6, point_table[r5]; dvfsr r6]
    [1 < k < L, DVFS: if r4 == k: lw r6, recovery_table[r5]; dvfsr r6]

and `finish` the exit path shared by every exit (the last layer falls through into it):
`ee.exit: sw r3 -> exit word; st output.logits <- exit.logits`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
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
)
from edgebert.compiler.tile_ir import Buffer, Ref, TileInst, TileProgram
from edgebert.compiler.views import fresh_view
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError
from edgebert.isa.table import BIN_MODES


@dataclass
class DvfsTables:
    """What the program embeds for latency-aware DVFS (tables are patched after planning, same sizes)."""

    exit_table: np.ndarray  # int32 [nbins]: layer-1 entropy bin -> predicted exit layer (2 .. L)
    point_table: np.ndarray  # int32 [L + 1]
    recovery_table: np.ndarray  # int32 [L + 1]
    fastest: int
    initial: int
    nbins: int = 100
    scale: float = 100.0
    mode: str = "nearest"


@dataclass
class EarlyExitSpec:
    """Exit heads (graph output names, layer order), the entropy threshold, optional DVFS tables."""

    heads: list[str]
    threshold: float
    dvfs: DvfsTables | None = None
    loop: bool = True  # try one layer loop with the heads inside (else / when unfit: unrolled)


def _vars_in(expr: Any) -> list[Any]:
    kind = type(expr).__name__
    if kind in ("Var", "DataflowVar"):
        return [expr]
    if kind == "Call":
        return [v for a in expr.args for v in _vars_in(a)]
    if kind == "Tuple":
        return [v for f in expr.fields for v in _vars_in(f)]
    if kind == "TupleGetItem":
        return _vars_in(expr.tuple_value)
    return []


class ExitLowering:
    """Hooks the backend calls while lowering `main` of a model with exit heads."""

    def __init__(self, spec: EarlyExitSpec, prog: TileProgram, output_names: list[str], main: Any) -> None:
        self.spec, self.prog = spec, prog
        missing = [h for h in spec.heads if h not in output_names]
        if missing:
            raise CompileError(f"exit heads {missing} are not outputs of the model (outputs: {output_names})")
        self.L = len(spec.heads)
        self.head_index = {output_names.index(h): k for k, h in enumerate(spec.heads, start=1)}
        self.exit_vars: dict[Any, int] = {}  # binding var of head k's logits -> k
        self.logits: Buffer | None = None
        self.num_labels = 0
        self.exit_word = prog.buffer(EXIT_WORD, 4, "output", "dram")
        self.tables: list[Buffer] = []
        self.looped = False  # set by loop_exit: the heads run inside one layer loop (compiler/early_exit_loop.py)
        self.layout = "unrolled"  # "looped", or "unrolled: <why the layers could not form one loop>"
        if spec.dvfs is not None:
            d = spec.dvfs
            for name, arr in zip(DVFS_TABLES, (d.exit_table, d.point_table, d.recovery_table), strict=True):
                self.tables.append(prog.constant(name, np.ascontiguousarray(arr, dtype="<i4")))
            if d.initial != d.fastest:
                prog.emit(TileInst("dvfs", {"point": d.fastest}))

    # ---- ordering ----------------------------------------------------------------------------------
    def reorder(self, bindings: list[Any], result: Any) -> list[Any]:
        """Demand order: the bindings exit head 1 needs, then those head 2 still needs, ..., then the rest."""
        defs = {b.var: i for i, b in enumerate(bindings)}
        outs = self._result_fields(bindings, result, defs)
        heads: list[Any] = [None] * self.L
        for pos, k in self.head_index.items():
            heads[k - 1] = outs[pos]
        for k, var in enumerate(heads, start=1):
            if var not in defs:
                raise CompileError(f"exit head '{self.spec.heads[k - 1]}' is not computed by a binding of main")
            self.exit_vars[var] = k
        done: set[int] = set()
        order: list[int] = []
        for var in heads:
            need: set[int] = set()
            stack = [defs[var]]
            while stack:
                i = stack.pop()
                if i in done or i in need:
                    continue
                need.add(i)
                stack.extend(defs[v] for v in _vars_in(bindings[i].value) if v in defs)
            order += sorted(need)
            done |= need
        order += [i for i in range(len(bindings)) if i not in done]
        return [bindings[i] for i in order]

    @staticmethod
    def _result_fields(bindings: list[Any], result: Any, defs: dict) -> list[Any]:
        expr = result
        if type(expr).__name__ in ("Var", "DataflowVar") and expr in defs:
            value = bindings[defs[expr]].value
            if type(value).__name__ == "Tuple":
                expr = value
        if type(expr).__name__ == "Tuple":
            return list(expr.fields)
        return [expr]

    def loop_plan(self, bindings: list[Any]) -> Any:
        """The `early_exit_loop.ExitLoopPlan` of the reordered bindings, or None (unrolled; `layout` says why)."""
        from edgebert.compiler.early_exit_loop import plan_exit_loop

        if not self.spec.loop:
            return None
        plan, why = plan_exit_loop(bindings, self.exit_vars, self.L)
        self.layout = "looped" if plan is not None else f"unrolled: {why}"
        return plan

    # ---- per-head code -----------------------------------------------------------------------------
    def after_head(self, k: int, value: Any, low: Any) -> None:
        """Exit code after head k's logits (see the module docstring)."""
        prog, spec = self.prog, self.spec
        t = low.to_sram(value, f"exit_{k}")
        n = int(np.prod(t.shape))
        if t.shape[-1] != n:
            raise CompileError(f"exit head '{spec.heads[k - 1]}' must give one row of logits, got shape {t.shape}")
        if self.logits is None:
            self.num_labels = n
            self.logits = prog.buffer(EXIT_LOGITS, n * 4, "act")
            low.pinned.add(id(self.logits))
        elif n != self.num_labels:
            raise CompileError(f"exit heads give {self.num_labels} and {n} logits: they must agree")
        dst = fresh_view(self.logits, (1, n), "f32")
        src = t.view.reshape((1, n))
        if src is None:
            raise CompileError(f"exit head '{spec.heads[k - 1]}': logits of shape {t.shape} are not one row")
        em.emit_unary(prog, "vmov", dst, src)
        if k < self.L:
            ent = TileInst("entropy", {"fd": F_ENTROPY, "n": n}, {"src": (self.logits, 0)},
                           [Ref(self.logits, 0, n * 4, False)])
            prog.emit(ent)
        prog.emit(TileInst("li", {"rd": R_EXIT, "imm": k}))
        if k == self.L:
            return
        prog.emit(TileInst("barrier"))
        prog.emit(TileInst("bexit", {"fs": F_ENTROPY, "threshold": f32_bits(spec.threshold)}, target=EXIT_LABEL))
        if spec.dvfs is None:
            return
        d = spec.dvfs
        exit_t, point_t, rec_t = self.tables
        if k == 1:
            _emit_prediction(prog, d, exit_t, point_t)
        else:
            skip = f"ee.recovered{k}"
            prog.emit(TileInst("li", {"rd": R_TMP, "imm": k}))
            prog.emit(TileInst("bne", {"rs1": R_PRED, "rs2": R_TMP}, target=skip))
            prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (rec_t, 0)}))
            prog.emit(TileInst("dvfsr", {"rs": R_TMP}))
            prog.label(skip)

    # ---- the looped form (compiler/early_exit_loop.py) ----------------------------------------------
    def loop_exit(self, value: Any, low: Any) -> None:
        """Exit code inside the layer loop after the head's logits: r3 = r1 + 1, DVFS keyed on r1 / r3."""
        prog, spec = self.prog, self.spec
        t = low.to_sram(value, "exit")
        n = int(np.prod(t.shape))
        src = t.view.reshape((1, n))
        if t.shape[-1] != n or src is None:
            raise CompileError(f"exit heads must give one row of logits, got shape {t.shape}")
        self.num_labels = n
        self.logits = prog.buffer(EXIT_LOGITS, n * 4, "act")
        low.pinned.add(id(self.logits))
        em.emit_unary(prog, "vmov", fresh_view(self.logits, (1, n), "f32"), src)
        prog.emit(TileInst("addi", {"rd": R_EXIT, "rs1": R_LAYER, "imm": 1}))  # R_LAYER = layers done before this one
        prog.emit(TileInst("barrier"))
        prog.emit(TileInst("beq", {"rs1": R_EXIT, "rs2": R_LAYER_LIMIT}, target="ee.last"))  # the last layer: no entropy
        prog.emit(TileInst("entropy", {"fd": F_ENTROPY, "n": n}, {"src": (self.logits, 0)},
                           [Ref(self.logits, 0, n * 4, False)]))
        prog.emit(TileInst("barrier"))
        prog.emit(TileInst("bexit", {"fs": F_ENTROPY, "threshold": f32_bits(spec.threshold)}, target=EXIT_LABEL))
        self.looped = True
        if spec.dvfs is None:
            prog.label("ee.last")
            return
        d = spec.dvfs
        exit_t, point_t, rec_t = self.tables
        prog.emit(TileInst("bne", {"rs1": R_LAYER, "rs2": 0}, target="ee.predicted"))  # predict after layer 1 only
        _emit_prediction(prog, d, exit_t, point_t)
        prog.label("ee.predicted")
        prog.emit(TileInst("bne", {"rs1": R_PRED, "rs2": R_EXIT}, target="ee.last"))  # r4 == r3: prediction was low
        prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (rec_t, 0)}))
        prog.emit(TileInst("dvfsr", {"rs": R_TMP}))
        prog.label("ee.last")

    def logits_tensor(self) -> Any:
        """The exit logits buffer as a lowered tensor (what every exit head's var stands for after the loop)."""
        from edgebert.compiler.lowering import Tensor

        return Tensor(fresh_view(self.logits, (1, self.num_labels), "f32"), "float32")

    def finish(self) -> tuple[str, Buffer, tuple[int, ...], str]:
        """The shared exit path; returns the `logits` output entry."""
        prog = self.prog
        if self.logits is None or len(self.exit_vars) != self.L:
            raise CompileError("internal: exit heads were not all lowered")
        prog.emit(TileInst("barrier"))
        prog.label(EXIT_LABEL)
        prog.emit(TileInst("sw", {"rs": R_EXIT}, {"dst": (self.exit_word, 0)}))
        out = prog.buffer("output.logits", self.num_labels * 4, "output", "dram")
        em.emit_dma(prog, "st", fresh_view(out, (1, self.num_labels), "f32"),
                    fresh_view(self.logits, (1, self.num_labels), "f32"))
        return ("logits", out, (1, self.num_labels), "float32")


# ---- the compile driver --------------------------------------------------------------------------------


@dataclass
class EarlyExitOptions:
    """`edgebertc --threshold/--latency-target/--predictor-table/--calibration-entropies/--dvfs-margin`."""

    threshold: float | None = None  # default: the model's edgebert.entropy_threshold
    latency_target_s: float | None = None  # latency-aware DVFS when set
    predictor_table: str | Path | np.ndarray | None = None  # lookup-table CSV (EdgeBERT format) or array
    calibration_entropies: str | Path | np.ndarray | None = None  # entropy trace [sentences, L] -> table
    margin: float = 0.0  # fraction of the target kept in reserve by the DVFS plan


def _exit_table(options: EarlyExitOptions, threshold: float, num_layers: int) -> np.ndarray:
    """int32 [100]: layer-1 entropy bin -> predicted exit layer, from the table or calibration entropies."""
    from edgebert.frontend.predictor import build_table, check_table, predicted_exit_layers
    from edgebert.isa.traces import read_entropy_array, read_lookup_table

    if options.predictor_table is not None and options.calibration_entropies is not None:
        raise CompileError("give either a predictor table or calibration entropies, not both")
    src = options.predictor_table
    if src is not None:
        table = np.asarray(src, dtype=np.float64) if isinstance(src, np.ndarray) else read_lookup_table(src)
        check_table(table)
    elif options.calibration_entropies is not None:
        ent = options.calibration_entropies
        ent = ent if isinstance(ent, np.ndarray) else read_entropy_array(ent)
        if ent.ndim != 2 or ent.shape[1] != num_layers:
            raise CompileError(f"calibration entropies must have one column per layer ({num_layers}), got {ent.shape}")
        table = build_table(ent)
    else:
        raise CompileError("--latency-target needs a predictor: --predictor-table CSV or --calibration-entropies FILE")
    return predicted_exit_layers(table, threshold, num_layers)


def compile_early_exit(mod: Any, hw: Any, loaded: Any, options: Any, meta: dict[str, Any], compile_relax: Any) -> Any:
    """Compile `mod` with its exit heads as early-exit branches (and DVFS); see `compile_onnx(early_exit=...)`."""
    from edgebert.compiler.dvfs_plan import fastest_point, measure_layer_cycles, plan_dvfs

    opts = EarlyExitOptions() if options is True else options
    md = loaded.metadata
    what = "--latency-target" if opts.latency_target_s is not None else "early exit (--threshold)"
    if not md.exit_heads:
        raise CompileError(f"{what} needs a model with exit heads (metadata edgebert.exit_heads); this model has none")
    heads = list(md.exit_heads)
    L = len(heads)
    if md.exit_layers and list(md.exit_layers) != list(range(1, L + 1)):
        raise CompileError(f"early exit needs one exit head after every layer 1..{L}, got layers {list(md.exit_layers)}")
    if opts.threshold is not None:
        threshold = float(opts.threshold)
    elif md.entropy_thresholds and len(set(md.entropy_thresholds)) == 1:
        threshold = float(md.entropy_thresholds[0])
    else:
        raise CompileError("early exit needs one entropy threshold: the model's metadata has none (or several); "
                           "give --threshold T")
    if not threshold > 0 or not np.isfinite(threshold):
        raise CompileError(f"entropy threshold must be positive, got {threshold}")
    dvfs = None
    exit_table = None
    if opts.latency_target_s is not None:
        if not opts.latency_target_s > 0:
            raise CompileError(f"latency target must be positive, got {opts.latency_target_s} s")
        if L < 3:
            raise CompileError(f"latency-aware DVFS needs at least 3 layers (exit heads), the model has {L}")
        exit_table = _exit_table(opts, threshold, L)
        F = fastest_point(hw)
        dvfs = DvfsTables(exit_table, np.full(L + 1, F, np.int32), np.full(L + 1, F, np.int32), F, hw.dvfs.initial)
    elif opts.predictor_table is not None or opts.calibration_entropies is not None:
        raise CompileError("--predictor-table / --calibration-entropies need --latency-target")
    spec = EarlyExitSpec(heads, threshold, dvfs)
    meta = {**meta, "thresholds": [threshold],
            "early_exit": {"heads": heads, "threshold": threshold, "num_layers": L, "output": "logits"}}
    result = compile_relax(mod=mod, hw=hw, output_names=list(loaded.output_names), output_shapes=None,
                           metadata=meta, early_exit=spec)
    result.program.metadata["early_exit"]["layout"] = getattr(result.tile_program, "exit_layout", "unrolled")
    if dvfs is not None:
        program = result.program
        cycles = measure_layer_cycles(program, hw)
        plan = plan_dvfs(hw, cycles, L, opts.latency_target_s, exit_table, margin=opts.margin)
        new = dict(zip(DVFS_TABLES, (plan.exit_table, plan.point_table, plan.recovery_table), strict=True))
        program.segments = [
            dataclasses.replace(s, data=np.ascontiguousarray(new[s.name], dtype="<i4").tobytes())
            if s.name in new else s for s in program.segments
        ]
        program.metadata["dvfs_table"] = plan.to_json()
        program.metadata["latency_target_s"] = opts.latency_target_s
        program.metadata["dvfs_plan"] = plan.describe(hw).splitlines()
        program.metadata["dvfs_infeasible_exits"] = plan.infeasible_exits(hw)
    return result


def _emit_prediction(prog: TileProgram, d: Any, exit_t: Buffer, point_t: Buffer) -> None:
    """Layer 1's entropy -> predicted exit layer (`lut` into R_PRED), its byte offset R_OFF, and the DVFS switch to
    that prediction's operating point (`lw` + `dvfsr`)."""
    prog.emit(TileInst("lut", {"rd": R_PRED, "fs": F_ENTROPY, "nbins": d.nbins, "scale": f32_bits(d.scale),
                               "mode": BIN_MODES.index(d.mode)}, {"table": (exit_t, 0)}))
    prog.emit(TileInst("li", {"rd": R_TMP, "imm": 4}))
    prog.emit(TileInst("mul", {"rd": R_OFF, "rs1": R_PRED, "rs2": R_TMP}))
    prog.emit(TileInst("lw", {"rd": R_TMP, "src_base": R_OFF}, {"src": (point_t, 0)}))
    prog.emit(TileInst("dvfsr", {"rs": R_TMP}))
