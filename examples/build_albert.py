"""Build a randomly initialised ALBERT from a config, export it to ONNX and write a matching input file.

    python examples/build_albert.py --preset tiny --seq-len 16 -o out/albert.onnx --inputs out/in.npz
    python examples/build_albert.py --preset albert-base --seq-len 128 -o out/base.onnx --inputs out/in.npz
    python examples/build_albert.py --preset tiny --num-hidden-groups 2 --num-layers 4 --pad 3 --exporter dynamo ...
    python examples/build_albert.py --preset tiny --dynamic -o out/dyn.onnx   # then: edgebertc --seq-len N

No hub download: the weights are random (every parameter re-randomised, see `randomize_parameters`).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from edgebert.frontend.models.hf_albert_export import (
    EXPORTERS,
    OUTPUT_KINDS,
    PRESETS,
    ExportSpec,
    _output_module,
    albert_config,
    build_albert,
    build_and_export,
    make_inputs,
)
from edgebert.isa.errors import EdgebertError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build_albert", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="base configuration (default tiny)")
    p.add_argument("--seq-len", type=int, default=16,
                   help="sequence length N of the export (fixed unless --dynamic) and of the inputs ([1, N])")
    p.add_argument("--dynamic", action="store_true",
                   help="symbolic batch and sequence axes (compile with edgebertc --seq-len N)")
    p.add_argument("-o", "--output", type=Path, default=Path("out/albert.onnx"), help="ONNX file to write")
    p.add_argument("--inputs", type=Path, help="also write a matching .npz of random inputs here")
    p.add_argument("--pad", type=int, default=0, help="mask out the last PAD positions in the inputs")
    p.add_argument("--exporter", default="legacy", choices=EXPORTERS, help="torch.onnx exporter (default legacy)")
    p.add_argument(
        "--outputs", default="logits", help=f"comma-separated graph outputs from {','.join(OUTPUT_KINDS)}"
    )
    p.add_argument("--token-type-ids", action="store_true", help="add a token_type_ids graph input")
    p.add_argument("--external-data", action="store_true", help="store weights in <output>.data beside the model")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    for name in ("hidden_size", "num_attention_heads", "intermediate_size", "embedding_size", "vocab_size",
                 "num_hidden_groups", "num_labels"):
        p.add_argument("--" + name.replace("_", "-"), type=int, help=f"override {name}")
    p.add_argument("--num-layers", dest="num_hidden_layers", type=int, help="override num_hidden_layers")
    return p.parse_args(argv)


def export_dynamic(path: Path, preset: str, spec: ExportSpec, seed: int, overrides: dict):
    """Like `build_and_export`, with symbolic batch and sequence axes (build_encoder.export_module does the export)."""
    if spec.external_data:
        raise EdgebertError("--external-data with --dynamic is not supported (the weights stay in the model)")
    zoo = sys.modules.get("build_encoder")
    if zoo is None:  # the sibling example, by path: examples/ is not a package
        loader = importlib.util.spec_from_file_location("build_encoder", Path(__file__).with_name("build_encoder.py"))
        zoo = sys.modules["build_encoder"] = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(zoo)
    cfg = albert_config(preset, **overrides)
    model = build_albert(cfg, head="sequence-classification" if "logits" in spec.outputs else "base", seed=seed)
    sample = make_inputs(spec.seq_len, cfg.vocab_size, seed=seed, token_type_ids=spec.token_type_ids)
    sample = {k: np.repeat(v, 2, axis=0) for k, v in sample.items()}  # batch 2: dynamo must not specialise it to 1
    zoo.export_module(_output_module(model, spec.outputs), sample, path, spec.outputs, exporter=spec.exporter,
                      opset=spec.opset if spec.exporter == "legacy" else None, dynamic=True,
                      max_seq=cfg.max_position_embeddings)
    return path, cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {
        k: getattr(args, k)
        for k in ("hidden_size", "num_attention_heads", "intermediate_size", "embedding_size", "vocab_size",
                  "num_hidden_groups", "num_labels", "num_hidden_layers")
    }
    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    spec = ExportSpec(
        seq_len=args.seq_len, exporter=args.exporter, outputs=outputs, token_type_ids=args.token_type_ids,
        external_data=args.external_data,
    )
    try:
        if args.dynamic:
            path, cfg = export_dynamic(args.output, args.preset, spec, args.seed, overrides)
        else:
            path, cfg = build_and_export(args.output, preset=args.preset, spec=spec, seed=args.seed, **overrides)
        if args.inputs:
            inputs = make_inputs(args.seq_len, cfg.vocab_size, pad=args.pad, seed=args.seed,
                                 token_type_ids=args.token_type_ids)
            args.inputs.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.inputs, **inputs)
    except EdgebertError as e:
        print(f"build_albert: error: {e}", file=sys.stderr)
        return 2
    seq = "symbolic batch and seq len" if args.dynamic else f"seq len {args.seq_len}"
    print(f"wrote {path} ({cfg.num_hidden_layers} layers, {cfg.num_hidden_groups} group(s), hidden "
          f"{cfg.hidden_size}, {seq}, {args.exporter} exporter)"
          + (f" and {args.inputs}" if args.inputs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
