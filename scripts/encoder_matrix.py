"""Run the encoder zoo matrix: build, compile with edgebertc, emulate, compare with onnxruntime, tabulate.

    python scripts/encoder_matrix.py                       # everything (about 300 cases, tiny sizes)
    python scripts/encoder_matrix.py --family bert --group core --json out/bert.json
    python scripts/encoder_matrix.py -k 'roberta.*dynamo' --keep out/models

Groups: `core` = families x heads x exporters (legacy opsets 14/17/18/20, dynamo at its default opset and 18) x
static/dynamic axes;
`act` = ALBERT with every transformers `hidden_act` (legacy 18 and dynamo); `fp16` = float16 exports;
`contrib` = exports fused by onnxruntime.transformers.optimizer (com.microsoft ops). Dynamic exports are
compiled with `--seq-len` = the export's sequence length. Every failure is put in one class of `CLASSES`
(docs/generality.md explains each and its fix). As a library: `matrix_cases`, `run_case`, `classify`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib.util
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4
GROUPS = ("core", "act", "fp16", "contrib")
#: (exporter, opset) pairs of the core matrix; None: dynamo's own default opset (20 with torch 2.13).
EXPORTS: tuple[tuple[str, int | None], ...] = (("legacy", 14), ("legacy", 17), ("legacy", 18), ("legacy", 20),
                                               ("dynamo", None), ("dynamo", 18))


def load_example(name: str):
    """Import `examples/<name>.py` as a module (examples are scripts, not part of the package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


zoo = load_example("build_encoder")

@dataclasses.dataclass(frozen=True)
class FailureClass:
    """One failure class: its id, the pattern searched in "stage: error", and what it is."""

    id: str
    pattern: str
    what: str
    dynamic_only: bool = False  # matches only cases exported with dynamic axes


#: Failure classes, first match wins; docs/generality.md explains each and the fix it needs.
CLASSES: tuple[FailureClass, ...] = (
    FailureClass("contrib-ops", r"com\.microsoft::", "onnxruntime contrib ops (com.microsoft) in the graph"),
    FailureClass("export-invalid", r"^reference:", "the exporter wrote a graph onnxruntime refuses (not ours)"),
    FailureClass("export", r"^export:", "torch.onnx.export itself failed"),
    FailureClass("fp16", r"float16", "float16 tensors"),
    FailureClass("dynamic-expand", r"Cannot use and / or / not operator to Expr",
                 "dynamic axes (legacy): Expand on a shape TVM's importer could not fold"),
    FailureClass("dynamic-shape-ops", r"op types: [^\]]*\b(Max|Min|Range|Shape)\b",
                 "dynamic axes (dynamo): shape arithmetic (Max) the support check rejects", dynamic_only=True),
    FailureClass("dynamic-shape", r"known shape|symbolic|not static|ShapeExpr", "dynamic axes: another symbolic shape"),
    FailureClass("reduce-mean-layernorm", r"ReduceMean|relax\.mean", "LayerNorm decomposed below opset 17"),
    FailureClass("erf-gelu", r"relax\.erf|\bErf\b", "exact GELU decomposed as x * 0.5 * (1 + erf(x / sqrt 2))"),
    FailureClass("position-ids", r"relax\.(equal|not_equal|cumsum)\b|\bCumSum\b",
                 "run-time position ids (input_ids != pad, CumSum)"),
    FailureClass("split", r"\bSplit\b|relax\.split", "Split (question-answering heads)"),
    FailureClass("pad", r"\bPad\b|relax\.nn\.pad|Dynamic pads", "Pad (MobileBERT trigram embedding)"),
    FailureClass("activation-ops", r"op types: [^\]]*\b(Clip|HardSwish|LeakyRelu|Softplus|Mish|PRelu|Min|Max)\b",
                 "activation ops without a lowering (Clip, HardSwish, LeakyRelu, Softplus, Mish, PRelu, Min)"),
    FailureClass("unsupported-op", r"unsupported ONNX node|is not supported by the edgebert backend", "another op"),
    FailureClass("mismatch", r"^compare:", "wrong numbers (max abs error above tolerance)"),
    FailureClass("other", r"", "anything else"),
)
CLASS_IDS = tuple(c.id for c in CLASSES)


@dataclasses.dataclass
class Row:
    """The outcome of one case."""

    name: str
    family: str
    head: str
    exporter: str
    opset: int
    dynamic: bool
    hidden_act: str
    fp16: bool
    status: str = "pass"  # pass | fail
    stage: str = ""  # where it stopped: export, reference, load, import, relax, backend, run, compare
    failure_class: str = ""
    error: str = ""
    max_abs_error: float | None = None
    ops: str = ""  # op types of the exported graph
    blockers: str = ""  # every failure class the graph's ops predict (the error shows only the first hit)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def classify(stage: str, error: str, dynamic: bool = False) -> str:
    """The failure class id of an error raised at `stage` (first matching class of CLASSES)."""
    text = f"{stage}: {error}"
    return next(c.id for c in CLASSES if (dynamic or not c.dynamic_only) and re.search(c.pattern, text))


#: ONNX op -> the failure class it triggered before issue 13's fixes (its trigger, for `graph_blockers`).
_OP_CLASSES = {"Erf": "erf-gelu", "CumSum": "position-ids", "Split": "split", "Pad": "pad",
               "ReduceMean": "reduce-mean-layernorm", **dict.fromkeys(
                   ("Clip", "HardSwish", "LeakyRelu", "Softplus", "Mish", "PRelu", "Min", "Max"), "activation-ops")}


def graph_blockers(model: Any, exporter: str) -> list[str]:
    """The failure classes whose trigger an exported graph holds (its ops, dtypes and input shapes): what each case
    exercises (before issue 13's fixes, the classes it would fail in; the contrib ops still are)."""
    from onnx import TensorProto

    found = set()
    dynamic = any(not d.HasField("dim_value") for v in model.graph.input for d in v.type.tensor_type.shape.dim)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            found.add("contrib-ops")
        elif node.op_type in _OP_CLASSES and not (dynamic and node.op_type in ("Min", "Max")):
            found.add(_OP_CLASSES[node.op_type])
    values = [*model.graph.input, *model.graph.output]
    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer) or any(
            v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in values):
        found.add("fp16")
    if dynamic:
        found.add("dynamic-expand" if exporter == "legacy" else "dynamic-shape-ops")
    return sorted(found, key=CLASS_IDS.index)


def matrix_cases(groups: tuple[str, ...] = GROUPS, seq_len: int = 16) -> list[Any]:
    """Every `EncoderSpec` of the requested groups, in a stable order."""
    spec = zoo.EncoderSpec
    cases = []
    if "core" in groups:
        for family in zoo.FAMILIES:
            for head in zoo.HEADS:
                for exporter, opset in EXPORTS:
                    for dynamic in (False, True):
                        cases.append(spec(family, head, exporter=exporter, opset=opset, dynamic=dynamic,
                                          seq_len=seq_len))
    if "act" in groups:
        for act in zoo.activations():
            for exporter, opset in (("legacy", 18), ("dynamo", None)):
                cases.append(spec("albert", "sequence-classification", hidden_act=act, exporter=exporter,
                                  opset=opset, seq_len=seq_len))
    if "fp16" in groups:
        for family in zoo.FAMILIES:
            for exporter, opset, attn in (("legacy", 18, "sdpa"), ("legacy", 18, "eager"), ("dynamo", None, "sdpa")):
                cases.append(spec(family, "sequence-classification", exporter=exporter, opset=opset, fp16=True,
                                  attn_implementation=attn, seq_len=seq_len))
    if "contrib" in groups:
        for family in zoo.FAMILIES:
            cases.append(spec(family, "sequence-classification", ort_optimize=True, seq_len=seq_len))
    return cases


def run_case(spec: Any, workdir: Path, hw: Any = None) -> Row:
    """Export `spec`, compile it (dynamic axes fixed to its seq_len), emulate, compare with onnxruntime.

    Never raises for a failing case: the Row says where it stopped, the one-line error and its class.
    """
    import onnx

    row = Row(spec.name, spec.family, spec.head, spec.exporter, spec.opset or 0, spec.dynamic,
              spec.hidden_act or "", spec.fp16)
    path = workdir / f"{spec.name}.onnx"
    stage = "export"
    try:
        with _timed(row, "export"):
            done = zoo.build_encoder(**{**dataclasses.asdict(spec), "path": path})
        model = onnx.load(str(path))
        row.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        row.ops = " ".join(sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
                                   for n in model.graph.node}))
        row.blockers = " ".join(graph_blockers(model, spec.exporter))
        stage = "reference"
        with _timed(row, "reference"):
            want = onnxruntime_outputs(model, done.inputs)  # also: is the export valid at all?
            if spec.fp16:  # the hardware computes in fp32: compare with the graph widened to fp32
                want = onnxruntime_outputs(fp32_reference(model), done.inputs)
        stage = "load"
        compiled = _compile(path, spec.seq_len, hw, row)
        stage = "run"
        from edgebert.emulator import run

        with _timed(row, "run"):
            got = run(compiled.program, done.inputs, hw).outputs
        stage = "compare"
        errs = compare(got, want)
        row.max_abs_error = max(errs.values())
        if row.max_abs_error > TOL:
            worst = max(errs, key=errs.get)
            raise _Mismatch(f"max abs error {row.max_abs_error:.3g} > {TOL:g} (output {worst})")
    except Exception as e:  # a matrix records every failure, whatever raised it
        stage = getattr(e, "stage", stage)
        row.status, row.stage = "fail", stage
        row.error = one_line(e)
        row.failure_class = classify(stage, row.error, spec.dynamic)
    return row


class _Mismatch(Exception):
    pass


class _StageError(Exception):
    def __init__(self, stage: str, error: Exception):
        super().__init__(one_line(error))
        self.stage = stage


def _compile(path: Path, seq_len: int, hw: Any, row: Row):
    """compile_onnx, recording the time of load/import/relax/backend and the stage an error came from."""
    from edgebert.compiler.pipeline import compile_onnx

    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # TVM's importer prints its failing operator
            return compile_onnx(path, seq_len, hw, timings=timings)
    except Exception as e:
        raise _StageError(_stage_of(timings), e) from e
    finally:
        row.seconds["compile"] = time.perf_counter() - start
        row.seconds["load"] = timings.get("load", 0.0)
        row.seconds["import"] = timings.get("import", 0.0)
        row.seconds["relax"] = timings.get("relax", 0.0)
        row.seconds["backend"] = sum(v for k, v in timings.items() if ":" not in k) - sum(
            row.seconds[k] for k in ("load", "import", "relax"))


def _stage_of(timings: dict[str, float]) -> str:
    """The compiler stage that failed: the first pipeline stage compile_onnx did not finish (it times only finished
    ones); every stage after `check` (the backend's support check) is reported as `backend`."""
    from edgebert.compiler.pipeline import STAGES

    for stage in STAGES:
        if stage.name not in timings and stage.when is None:
            return stage.name if stage.name in ("load", "import", "relax", "check") else "backend"
    return "backend"


@contextlib.contextmanager
def _timed(row: Row, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        row.seconds[name] = row.seconds.get(name, 0.0) + time.perf_counter() - start


def one_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if none)."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def onnxruntime_outputs(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's outputs (CPU provider) of a ModelProto, by output name."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feeds = {i.name: inputs[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(None, feeds), strict=True))


def fp32_reference(model: Any) -> Any:
    """The fp16 graph with every float16 tensor, cast and type widened to float32 (fp16 values are exact in fp32).

    An fp16 model compiled for hardware that computes in fp32 should match this, not onnxruntime's fp16 run.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph

    def widen(t):
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))

    for t in graph.initializer:
        widen(t)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                widen(attr.t)
            elif attr.name in ("to", "dtype") and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.FLOAT
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    return out


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs error per reference output; a missing or differently sized output is an error."""
    errs = {}
    for name, ref in want.items():
        if name not in got:
            raise _Mismatch(f"output {name!r} missing from the emulator's outputs {sorted(got)}")
        value = got[name]
        if value.size != ref.size:
            raise _Mismatch(f"output {name!r}: {value.shape} vs onnxruntime {ref.shape}")
        diff = value.reshape(ref.shape).astype(np.float64) - ref.astype(np.float64)
        errs[name] = float(np.max(np.abs(diff))) if ref.size else 0.0
    return errs


def select(cases: list[Any], args: argparse.Namespace) -> list[Any]:
    """The cases the command-line filters keep."""
    keep = []
    for spec in cases:
        export = spec.exporter + (str(spec.opset) if spec.opset else "")
        if args.family and spec.family not in args.family:
            continue
        if args.head and spec.head not in args.head:
            continue
        if args.exporter and not any(export == e or spec.exporter == e for e in args.exporter):
            continue
        if args.k and not all(re.search(k, spec.name) for k in args.k):
            continue
        keep.append(spec)
    return keep


def format_table(rows: list[Row]) -> str:
    """A fixed-width table, then counts per status and per failure class."""
    lines = [f"{'case':58s} {'result':6s} {'class':22s} {'stage':9s} {'err':>8s} {'export':>6s} {'compile':>7s} "
             f"{'run':>5s}  error / [all blockers]"]
    for r in rows:
        err = "" if r.max_abs_error is None else f"{r.max_abs_error:.1e}"
        s = r.seconds
        lines.append(f"{r.name:58s} {r.status:6s} {r.failure_class:22s} {r.stage:9s} {err:>8s} "
                     f"{s.get('export', 0):6.1f} {s.get('compile', 0):7.2f} {s.get('run', 0):5.2f}  {r.error[:140]}"
                     + (f" [{r.blockers}]" if r.blockers and r.blockers != r.failure_class else ""))
    lines.append("")
    lines.append(summary(rows))
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """`N cases: P pass, F fail` and the failing count per class."""
    passed = sum(r.passed for r in rows)
    out = [f"{len(rows)} cases: {passed} pass, {len(rows) - passed} fail"]
    counts: dict[str, int] = {}
    for r in rows:
        if not r.passed:
            counts[r.failure_class] = counts.get(r.failure_class, 0) + 1
    for c in CLASSES:
        if c.id in counts:
            out.append(f"  {c.id:24s} {counts[c.id]:4d}  {c.what}")
    return "\n".join(out)


def format_markdown(rows: list[Row]) -> str:
    """The rows as markdown (docs/generality.md): core cases as a family-head x export grid (`ok` or the failure
    class), the other groups as lists, then per class the cases it stops first and the cases that need it."""
    core = [r for r in rows if not (r.hidden_act or r.fp16 or r.name.endswith("-ortopt"))]
    cols = sorted({_export_col(r) for r in core}, key=lambda c: (c.startswith("dynamo"), len(c.split()[0]),
                                                               c.split()[0], c.endswith("dyn")))
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    grid: dict[str, dict[str, str]] = {}
    for r in core:
        grid.setdefault(f"{r.family} {r.head}", {})[_export_col(r)] = "ok" if r.passed else r.failure_class
    for model, cells in grid.items():
        lines.append(f"| {model} | " + " | ".join(cells.get(c, "") for c in cols) + " |")
    rest = [r for r in rows if r not in core]
    if rest:
        lines += ["", "| case | result | error |", "|---|---|---|"]
        lines += [f"| {r.name} | {'ok' if r.passed else r.failure_class} | {r.error[:100].replace('|', '/')} |"
                  for r in rest]
    first: dict[str, int] = {}
    needs: dict[str, int] = {}
    for r in rows:
        if not r.passed:
            first[r.failure_class] = first.get(r.failure_class, 0) + 1
            for b in set(r.blockers.split()) | {r.failure_class}:
                needs[b] = needs.get(b, 0) + 1
    lines += ["", f"{sum(r.passed for r in rows)} of {len(rows)} cases pass.", "",
              "| class | stops first | cases that need it | what |", "|---|---|---|---|"]
    lines += [f"| {c.id} | {first.get(c.id, 0)} | {needs.get(c.id, 0)} | {c.what} |" for c in CLASSES
              if c.id in needs]
    return "\n".join(lines)


def _export_col(r: Row) -> str:
    name = r.exporter + (str(r.opset) if r.exporter == "legacy" or r.opset == 18 else "")
    return f"{name} {'dyn' if r.dynamic else 'static'}"


def write_json(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1) + "\n")


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [f.name for f in dataclasses.fields(Row) if f.name != "seconds"]
    stages = sorted({k for r in rows for k in r.seconds})
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields + [f"seconds_{k}" for k in stages])
        for r in rows:
            d = dataclasses.asdict(r)
            w.writerow([d[f] for f in fields] + [f"{r.seconds.get(k, 0.0):.3f}" for k in stages])


def _worker(spec: Any, workdir: str) -> Row:
    return run_case(spec, Path(workdir))


def run_all(cases: list[Any], workdir: Path, jobs: int = 1, progress=None) -> list[Row]:
    """Run the cases in order (`jobs` > 1: in that many spawned processes); `progress(row)` after each."""
    rows: list[Row] = []
    if jobs <= 1:
        for spec in cases:
            rows.append(run_case(spec, workdir))
            if progress:
                progress(rows[-1])
        return rows
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for row in pool.map(_worker, cases, [str(workdir)] * len(cases)):
            rows.append(row)
            if progress:
                progress(row)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="encoder_matrix", description=__doc__.splitlines()[0])
    p.add_argument("--group", action="append", choices=GROUPS, help="case groups (default: all)")
    p.add_argument("--family", action="append", choices=sorted(zoo.FAMILIES), help="only these families")
    p.add_argument("--head", action="append", choices=list(zoo.HEADS), help="only these heads")
    p.add_argument("--exporter", action="append", help="only these exports: legacy, legacy14..legacy20, dynamo")
    p.add_argument("-k", action="append", help="only cases whose name matches this regex (repeatable: all)")
    p.add_argument("--seq-len", type=int, default=16, help="sequence length (dynamic exports: --seq-len)")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (default 1: the machine is shared)")
    p.add_argument("--keep", type=Path, help="keep the exported models in this folder")
    p.add_argument("--json", type=Path, help="write the rows as JSON here")
    p.add_argument("--csv", type=Path, help="write the rows as CSV here")
    p.add_argument("--markdown", type=Path, help="write the grid and class counts as markdown here")
    p.add_argument("--from-json", type=Path, help="tabulate rows an earlier --json wrote instead of running")
    p.add_argument("--list", action="store_true", help="only list the selected case names")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        rows = [Row(**d) for d in json.loads(args.from_json.read_text())]
        print(format_table(rows))
        if args.markdown:
            args.markdown.write_text(format_markdown(rows) + "\n")
        return 0
    cases = select(matrix_cases(tuple(args.group or GROUPS), args.seq_len), args)
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0
    if not cases:
        print("encoder_matrix: error: no case matches the filters", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        workdir = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="encoder_matrix.")))
        workdir.mkdir(parents=True, exist_ok=True)
        done = []

        def progress(row: Row) -> None:
            done.append(row)
            mark = "ok" if row.passed else f"FAIL {row.failure_class}: {row.error[:120]}"
            print(f"[{len(done)}/{len(cases)}] {row.name} {mark}", file=sys.stderr, flush=True)

        rows = run_all(cases, workdir, args.jobs, progress)
    print(format_table(rows))
    if args.json:
        write_json(rows, args.json)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        args.markdown.write_text(format_markdown(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
