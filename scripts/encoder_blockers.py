"""Every blocker of each matrix case, not only its first error: the diagnosis behind docs/generality.md.

    python scripts/encoder_matrix.py --keep out/models --json out/matrix.json
    python scripts/encoder_blockers.py out/models --json out/blockers.json [-k REGEX]

For each kept model: fix the inputs to [1, seq_len], fold the shape arithmetic on the ONNX side (onnxruntime's
basic graph optimisations, or onnxscript.optimizer: the fix recommended for dynamic axes), skip the up-front op check, import into Relax, run edgebert's Relax
passes, and list every op the backend cannot lower (its own support check, every binding), then try the backend.
The loader folds dynamic shapes itself now; this script's fold stays to compare onnxruntime's and onnxscript's.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import encoder_matrix as matrix  # noqa: E402  (a sibling script)


@dataclasses.dataclass
class Blockers:
    """What stands between one case and a pass once dynamic axes are folded."""

    name: str
    onnx_ops_after_fold: str = ""  # ops the ONNX-side fold left that the up-front check rejects today
    stage: str = ""  # import | relax | backend | run | compare | pass
    relax_ops: str = ""  # Relax ops without a backend lowering, over all functions
    dtypes: str = ""  # non-fp32/int tensor dtypes in the Relax module
    error: str = ""
    max_abs_error: float | None = None


FOLDERS = ("onnxruntime", "onnxscript")


def fold_fixed_shapes(model: Any, seq_len: int, folder: str = "onnxruntime") -> Any:
    """Inputs fixed to [1, seq_len] (as edgebert's loader does), then `fold_shapes`."""
    from edgebert.frontend.loader import _fix_input_shapes

    _fix_input_shapes(model, seq_len)
    return fold_shapes(model, folder)


def fold_shapes(model: Any, folder: str = "onnxruntime") -> Any:
    """Constant folding of everything static input shapes make constant: onnxruntime's basic graph optimisations
    (ORT_ENABLE_BASIC: constant folding and redundant-node elimination, standard ONNX ops only) or
    `onnxscript.optimizer.optimize`."""
    import tempfile

    import onnx

    if folder == "onnxscript":
        import onnxscript.optimizer

        return onnxscript.optimizer.optimize(model)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def unlowered_ops(mod: Any) -> tuple[set[str], set[str]]:
    """(Relax ops the backend cannot lower, dtypes it has no storage for) over `main` and the functions it calls: the
    backend's own check (compiler/lower/support.py), every binding rather than the first."""
    from edgebert.compiler.lower.support import unsupported_bindings

    ops, dtypes = set(), set()
    for u in unsupported_bindings(mod):
        (dtypes if u.reason.startswith("dtype ") else ops).add(u.reason.split()[1] if u.reason.startswith("dtype ")
                                                              else u.op)
    return ops, dtypes


def diagnose(path: Path, spec: Any, folder: str = "onnxruntime") -> Blockers:
    """The Blockers of one kept model (see module docstring)."""
    import onnx
    from onnx import defs

    from edgebert.compiler.pipeline import compile_relax, relax_pipeline
    from edgebert.emulator import run
    from edgebert.frontend import load_onnx, to_relax
    from edgebert.frontend.support import SUPPORTED_ONNX_OPS

    out = Blockers(spec.name)
    model = onnx.load(str(path))
    every_op = frozenset(s.name for s in defs.get_all_schemas())
    stage = "fold"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            folded = fold_fixed_shapes(model, spec.seq_len, folder)
            out.onnx_ops_after_fold = " ".join(sorted({
                n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in folded.graph.node
                if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED_ONNX_OPS}))
            stage = "load"
            loaded = load_onnx(folded, spec.seq_len, every_op)
            stage = "import"
            mod = to_relax(loaded)
            stage = "relax"
            mod = relax_pipeline(mod, None, {})
            ops, dtypes = unlowered_ops(mod)
            out.relax_ops, out.dtypes = " ".join(sorted(ops)), " ".join(sorted(dtypes))
            stage = "backend"
            compiled = compile_relax(mod, output_names=list(loaded.output_names),
                                     output_shapes=[t.shape for t in loaded.outputs])
        stage = "run"
        inputs = matrix.zoo.make_inputs(spec, matrix.zoo.encoder_config(spec))
        got = run(compiled.program, inputs).outputs
        stage = "compare"
        want = matrix.onnxruntime_outputs(matrix.fp32_reference(model) if spec.fp16 else model, inputs)
        out.max_abs_error = max(matrix.compare(got, want).values())
        out.stage = "pass" if out.max_abs_error <= matrix.TOL else "compare"
    except Exception as e:  # a diagnosis records whatever stops it
        out.stage, out.error = stage, matrix.one_line(e)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="encoder_blockers", description=__doc__.splitlines()[0])
    p.add_argument("models", type=Path, help="folder of models kept by encoder_matrix.py --keep")
    p.add_argument("-k", action="append", help="only cases whose name matches this regex (repeatable: all)")
    p.add_argument("--fold", choices=FOLDERS, default=FOLDERS[0], help="ONNX-side constant folding")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    specs = {s.name: s for s in matrix.matrix_cases()}
    rows = []
    for path in sorted(args.models.glob("*.onnx")):
        spec = specs.get(path.stem)
        if spec is None or (args.k and not all(re.search(k, spec.name) for k in args.k)):
            continue
        rows.append(diagnose(path, spec, args.fold))
        r = rows[-1]
        print(f"{r.name:58s} {r.stage:8s} onnx[{r.onnx_ops_after_fold}] relax[{r.relax_ops}] {r.dtypes} "
              f"{r.error[:120]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
