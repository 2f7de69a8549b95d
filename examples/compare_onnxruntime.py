"""Compare an emulator run's outputs with onnxruntime on the same model and inputs.

    python examples/compare_onnxruntime.py out/albert.onnx out/in.npz out/out.npz
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnxruntime as ort


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="the ONNX model that was compiled")
    p.add_argument("inputs", help=".npz of inputs given to both")
    p.add_argument("outputs", help=".npz the emulator wrote (edgebert-emu --outputs)")
    p.add_argument("--tol", type=float, default=1e-4, help="max abs error accepted (default 1e-4)")
    args = p.parse_args(argv)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    with np.load(args.inputs) as data:
        feeds = {i.name: data[i.name] for i in session.get_inputs()}
    reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    worst = 0.0
    with np.load(args.outputs) as emulated:
        common = [name for name in reference if name in emulated.files]
        if not common:
            print(f"no output names in common: model {sorted(reference)}, emulator {sorted(emulated.files)} "
                  "(an early-exit program outputs the chosen head as 'logits'; see docs/compiler.md)",
                  file=sys.stderr)
            return 2
        for name in common:
            ref = reference[name]
            got = emulated[name].reshape(ref.shape)
            err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
            worst = max(worst, err)
            print(f"{name}: shape {tuple(ref.shape)}, max abs error vs onnxruntime {err:.3g}")
    ok = worst <= args.tol
    print(f"{'OK' if ok else 'MISMATCH'}: max abs error {worst:.3g} (tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
