"""Three single-task binaries vs one multi-task binary (docs/multitask.md): memory, bytes loaded, energy, stream.

python benchmarks/bench_multitask.py [--onnx-dir DIR] [--layers 4 --hidden 64 --seq-len 32] [--sentences 12]
Without --onnx-dir it trains a small adapter-ALBERT (pruned AF8 backbone, AF8 activations and attention unless
--fp32-activations, three tasks) for a few epochs first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

TASKS = ["sentiment", "topic", "valence"]


def train_and_export(out: Path, layers: int, hidden: int, seq: int, epochs: int, af8_activations: bool = True
                     ) -> dict[str, Path]:
    import torch

    from edgebert.frontend.models.adapters import AdapterConfig
    from edgebert.frontend.models.compressed_albert import CompressionConfig, albert_config
    from edgebert.frontend.models.compressed_training import TrainSettings
    from edgebert.frontend.models.multitask_albert import MultiTaskAlbert
    from edgebert.frontend.models.multitask_export import export_all_tasks
    from edgebert.frontend.models.multitask_training import MultiTaskRecipe, run_recipe
    from edgebert.frontend.models.synthetic_tasks import VOCAB, make_dataset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = albert_config(len(VOCAB), hidden=hidden, layers=layers, heads=2, intermediate=2 * hidden, max_positions=seq)
    mt = MultiTaskAlbert(cfg, TASKS, CompressionConfig(), AdapterConfig(bottleneck=max(hidden // 4, 4)))
    train = {t: make_dataset(t, 500, seq, seed=0) for t in TASKS}
    evals = {t: make_dataset(t, 200, seq, seed=2000) for t in TASKS}
    recipe = MultiTaskRecipe(pretrain=TrainSettings(epochs=epochs, lr=3e-3), prune_method="magnitude",
                             prune=TrainSettings(epochs=1, lr=1e-3, seed=1), af8=True,
                             qat=TrainSettings(epochs=1, lr=5e-4, seed=2), af8_activations=af8_activations,
                             af8_attention=af8_activations,
                             adapters=TrainSettings(epochs=epochs, lr=5e-3, seed=3))
    run_recipe(mt, train, evals, recipe)
    mt.eval()
    return export_all_tasks(mt, out, seq)


def main() -> None:
    from edgebert.compiler.early_exit import EarlyExitOptions
    from edgebert.compiler.multitask import compile_multitask
    from edgebert.compiler.pipeline import compile_onnx
    from edgebert.emulator.bench import STREAM_KINDS, compare, format_markdown, make_stream
    from edgebert.emulator.multitask import switch_cost
    from edgebert.frontend.models.synthetic_tasks import make_dataset
    from edgebert.isa.hardware import default_config

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--onnx-dir", help="exported task models {sentiment,topic,valence}.onnx (default: train)")
    p.add_argument("--layers", type=int, default=4, help="layers of the trained backbone (default 4)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    p.add_argument("--seq-len", type=int, default=32, help="sequence length (default 32)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each training phase (default 3)")
    p.add_argument("--sentences", type=int, default=12, help="sentences per task")
    p.add_argument("--sram-bytes", type=int, help="SRAM size of the hardware config (default: the shipped 4 MiB)")
    p.add_argument("--fp32-activations", action="store_true", help="train without AF8 activations (weights only)")
    p.add_argument("--json", help="write the raw comparison here")
    args = p.parse_args()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp())
    if args.onnx_dir:
        paths = {t: Path(args.onnx_dir) / f"{t}.onnx" for t in TASKS}
    else:
        paths = train_and_export(tmp, args.layers, args.hidden, args.seq_len, args.epochs, not args.fp32_activations)
    t1 = time.perf_counter()
    hw = default_config()
    if args.sram_bytes:
        hw = dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=dataclasses.replace(
            hw.memory.sram, size_bytes=args.sram_bytes)))
    res = compile_multitask([paths[t] for t in TASKS], hw)
    singles = {t: compile_onnx(paths[t], hw=hw, early_exit=EarlyExitOptions(threshold=res.program.metadata["multitask"]
                                                                     ["tasks"][k]["threshold"])).program
               for k, t in enumerate(TASKS)}
    seq = res.program.metadata["inputs"][0]["shape"][-1]
    sentences = {}
    for t in TASKS:
        d = make_dataset(t, args.sentences, seq, seed=7)
        sentences[t] = [{"input_ids": np.asarray(d.input_ids[i : i + 1]),
                         "attention_mask": np.asarray(d.attention_mask[i : i + 1])} for i in range(args.sentences)]
    t2 = time.perf_counter()
    counts = {t: len(v) for t, v in sentences.items()}
    result = compare(singles, res.program, sentences, hw, streams={k: make_stream(k, counts) for k in STREAM_KINDS})
    result["switch"] = {t: switch_cost(res.program, sentences[t][0], t, hw, previous=TASKS[(k + 2) % 3])
                        for k, t in enumerate(TASKS)}
    t3 = time.perf_counter()
    print(format_markdown(result))
    for t, sw in result["switch"].items():
        print(f"switch {sw['from']} -> {t}: {sw['bytes']:,} B, {sw['cycles']:,} cycles, {sw['energy_j'] * 1e9:.2f} nJ")
    for note in res.notes:
        print(f"note: {note}")
    print(f"placement {res.placement}; {len(res.program.code)} instructions; train {t1 - t0:.1f} s, "
          f"compile {t2 - t1:.1f} s, emulate {t3 - t2:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
