"""Build a randomly initialised Hugging Face encoder from a config, export it to ONNX and write matching inputs.

    python examples/build_encoder.py --family bert --head sequence-classification -o out/bert.onnx --inputs out/in.npz
    python examples/build_encoder.py --family roberta --head question-answering --exporter dynamo --dynamic ...
    python examples/build_encoder.py --family albert --hidden-act gelu --exporter legacy --opset 14 ...

Families: bert, distilbert, roberta, electra, mobilebert, albert. Heads: base (last_hidden_state and, where the
family has one, pooler_output), sequence-classification and token-classification (logits), question-answering
(start_logits, end_logits). No hub download: models come from `from_config` with every parameter re-randomised.
As a library: `build_encoder(family, head, path, ...) -> EncoderExport` (tests/e2e and scripts/encoder_matrix.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.frontend.models.hf_albert_export import randomize_parameters
from edgebert.isa.errors import EdgebertError

EXPORTERS = ("legacy", "dynamo")
SIZES = ("tiny", "base")
ATTENTION = ("sdpa", "eager")

#: Graph outputs per head, in order (`base` drops pooler_output for families without a pooler).
HEADS: dict[str, tuple[str, tuple[str, ...]]] = {
    "base": ("Model", ("last_hidden_state", "pooler_output")),
    "sequence-classification": ("ForSequenceClassification", ("logits",)),
    "token-classification": ("ForTokenClassification", ("logits",)),
    "question-answering": ("ForQuestionAnswering", ("start_logits", "end_logits")),
}

_BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=512)


@dataclasses.dataclass(frozen=True)
class Family:
    """One transformers model family: class prefix, its config's activation field, inputs and sizes."""

    prefix: str  # "Bert" -> BertConfig, BertModel, BertForSequenceClassification, ...
    act_field: str  # the config field holding the activation name
    token_type_ids: bool  # whether its tokenizer returns token_type_ids (a graph input)
    pooler: bool  # whether the bare model returns pooler_output
    sizes: dict[str, dict[str, Any]]
    position_offset: int = 0  # RoBERTa: positions start after the pad id, so seq + offset <= max positions


FAMILIES: dict[str, Family] = {
    "bert": Family("Bert", "hidden_act", True, True, {
        "tiny": dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64),
        "base": _BERT_BASE,
    }),
    "distilbert": Family("DistilBert", "activation", False, False, {
        "tiny": dict(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64),
        "base": dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512),
    }),
    "roberta": Family("Roberta", "hidden_act", False, True, {
        "tiny": dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=66, type_vocab_size=1),
        "base": dict(_BERT_BASE, vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
    }, position_offset=2),
    "electra": Family("Electra", "hidden_act", True, False, {
        "tiny": dict(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64),
        "base": dict(_BERT_BASE, embedding_size=768),
    }),
    "mobilebert": Family("MobileBert", "hidden_act", True, True, {
        "tiny": dict(vocab_size=100, embedding_size=16, hidden_size=64, intra_bottleneck_size=32,
                     num_attention_heads=2, intermediate_size=32, num_feedforward_networks=2, num_hidden_layers=2,
                     max_position_embeddings=64),
        "base": dict(vocab_size=30522, embedding_size=128, hidden_size=512, intra_bottleneck_size=128,
                     num_attention_heads=4, intermediate_size=512, num_feedforward_networks=4, num_hidden_layers=24,
                     max_position_embeddings=512),
    }),
    "albert": Family("Albert", "hidden_act", True, True, {
        "tiny": dict(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64),
        "base": dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512),
    }),
}


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """What to build and how to export it."""

    family: str = "bert"
    head: str = "sequence-classification"
    size: str = "tiny"
    hidden_act: str | None = None  # None: the family's default
    exporter: str = "legacy"
    opset: int | None = None  # None: the exporter's default (legacy: 18)
    dynamic: bool = False  # symbolic batch and sequence axes
    seq_len: int = 16
    fp16: bool = False
    attn_implementation: str = "sdpa"  # transformers' default; "eager" spells attention out in matmuls
    ort_optimize: bool = False  # then fuse with onnxruntime.transformers.optimizer (com.microsoft contrib ops)
    pad: int = 3  # the last `pad` positions of the sample inputs are padding
    seed: int = 0

    @property
    def name(self) -> str:
        """A short identifier, e.g. `bert-sequence-classification-legacy18-static`."""
        export = "dynamo" if self.exporter == "dynamo" else "legacy"
        if self.opset is not None or self.exporter == "legacy":
            export += str(self.opset or 18)
        parts = [self.family, self.head, export, "dynamic" if self.dynamic else "static"]
        if self.hidden_act:
            parts.append(self.hidden_act)
        if self.fp16:
            parts.append("fp16")
        if self.attn_implementation != "sdpa":
            parts.append(self.attn_implementation)
        if self.ort_optimize:
            parts.append("ortopt")
        if self.size != "tiny":
            parts.append(self.size)
        return "-".join(parts)


@dataclasses.dataclass
class EncoderExport:
    """An exported model: its path, sample inputs (batch 1, `seq_len`) and graph output names."""

    path: Path
    inputs: dict[str, np.ndarray]
    output_names: tuple[str, ...]
    config: Any
    spec: EncoderSpec


def encoder_config(spec: EncoderSpec):
    """The transformers config for `spec` (dropout 0, the requested activation and attention)."""
    import transformers

    family = _family(spec.family)
    if spec.size not in family.sizes:
        raise EdgebertError(f"unknown size {spec.size!r}; choose one of {', '.join(family.sizes)}")
    fields = dict(family.sizes[spec.size])
    if spec.hidden_act:
        fields[family.act_field] = spec.hidden_act
    fields["num_labels"] = 2 if spec.head == "question-answering" else 3  # QA heads score start and end
    cls = getattr(transformers, family.prefix + "Config")
    cfg = cls(**fields)
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout",
                 "classifier_dropout_prob", "qa_dropout", "seq_classif_dropout", "summary_last_dropout"):
        if hasattr(cfg, name):
            setattr(cfg, name, 0.0)
    if spec.attn_implementation not in ATTENTION:
        raise EdgebertError(f"unknown attention {spec.attn_implementation!r}; choose one of {', '.join(ATTENTION)}")
    cfg._attn_implementation = spec.attn_implementation
    return cfg


def build_model(spec: EncoderSpec, cfg=None):
    """A randomly initialised, re-randomised, eval-mode model for `spec` (fp16 when asked)."""
    import torch
    import transformers

    family = _family(spec.family)
    if spec.head not in HEADS:
        raise EdgebertError(f"unknown head {spec.head!r}; choose one of {', '.join(HEADS)}")
    cfg = cfg if cfg is not None else encoder_config(spec)
    torch.manual_seed(spec.seed)
    model = getattr(transformers, family.prefix + HEADS[spec.head][0])(cfg)
    randomize_parameters(model, seed=spec.seed)
    if spec.fp16:
        model = model.half()
    return model.eval()


def output_names(spec: EncoderSpec) -> tuple[str, ...]:
    """The graph outputs of `spec`'s head."""
    names = HEADS[spec.head][1]
    if spec.head == "base" and not _family(spec.family).pooler:
        names = names[:1]
    return names


def input_names(spec: EncoderSpec) -> tuple[str, ...]:
    """The graph inputs: input_ids, attention_mask and token_type_ids where the family has them."""
    return ("input_ids", "attention_mask") + (("token_type_ids",) if _family(spec.family).token_type_ids else ())


def make_inputs(spec: EncoderSpec, cfg, batch: int = 1) -> dict[str, np.ndarray]:
    """Sample inputs [batch, seq_len]: ids of ordinary tokens (not special ids), the last `pad` positions padding
    (pad id, mask 0), token types 0 then 1 from the middle where the family has them."""
    n, pad = spec.seq_len, spec.pad
    if not 0 <= pad < n:
        raise EdgebertError(f"pad {pad} must be in 0..{n - 1}")
    rng = np.random.default_rng(spec.seed + 1)
    pad_id = int(getattr(cfg, "pad_token_id", 0) or 0)
    low = max(4, pad_id + 1)  # keep clear of pad/bos/eos ids: a stray pad id moves RoBERTa's positions
    ids = rng.integers(low, cfg.vocab_size, size=(batch, n), dtype=np.int64)
    mask = np.ones((batch, n), dtype=np.int64)
    if pad:
        ids[:, n - pad:] = pad_id
        mask[:, n - pad:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names(spec):
        types = np.zeros((batch, n), dtype=np.int64)
        types[:, n // 2:] = 1
        inputs["token_type_ids"] = types
    return inputs


def output_module(model, inputs: tuple[str, ...], outputs: tuple[str, ...]):
    """A torch module around a transformers model: the `inputs` positionally in, the named `outputs` as a tuple."""
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in inputs:
                kwargs["token_type_ids"] = token_type_ids
            got = self.model(**kwargs, return_dict=True)
            return tuple(got[name] for name in outputs)

    return Outputs().eval()


@contextlib.contextmanager
def quiet():
    """Silence warnings and everything written to stdout/stderr, by Python or by C++ (file descriptors 1, 2).

    The legacy exporter prints whole TorchScript graphs from C++ when an op has no symbolic."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def export_module(
    module, sample: dict[str, np.ndarray], path: str | Path, outputs: tuple[str, ...], *,
    exporter: str = "legacy", opset: int | None = None, dynamic: bool = False, max_seq: int | None = None,
) -> Path:
    """Export a torch module taking the `sample` tensors positionally to ONNX at `path`.

    `dynamic`: batch and sequence axes of every input (and of the outputs, legacy) are symbolic (`batch`,
    `sequence`); the sample should then have batch >= 2 so the dynamo exporter does not specialise it to 1.
    """
    import torch

    if exporter not in EXPORTERS:
        raise EdgebertError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(sample)
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    kwargs: dict[str, Any] = {"input_names": names, "output_names": list(outputs)}
    if opset is not None or exporter == "legacy":
        kwargs["opset_version"] = opset or 18
    if exporter == "legacy":
        kwargs.update(dynamo=False, do_constant_folding=True)
        if dynamic:
            axes = {n: {0: "batch", 1: "sequence"} for n in names}
            axes.update({o: {0: "batch"} for o in outputs})
            kwargs["dynamic_axes"] = axes
    else:
        kwargs.update(dynamo=True, external_data=False, verbose=False)
        if dynamic:
            batch = torch.export.Dim("batch", min=1, max=1024)
            seq = torch.export.Dim("sequence", min=2, max=max_seq or 4096)
            kwargs["dynamic_shapes"] = tuple({0: batch, 1: seq} for _ in names)
    try:
        with quiet():
            torch.onnx.export(module, args, str(path), **kwargs)
    except Exception as e:  # the exporters raise many types; report the first line
        first = next((line for line in str(e).strip().splitlines() if line.strip()), type(e).__name__)
        raise EdgebertError(f"torch.onnx.export ({exporter}) failed: {first}") from None
    return path


def ort_optimize(path: str | Path, cfg) -> Path:
    """Rewrite `path` with onnxruntime's transformer fusions (Attention, SkipLayerNormalization, FastGelu, ...:
    `com.microsoft` contrib ops), as `optimum`'s ORTOptimizer and `onnxruntime.transformers.optimizer` users do."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_heads
    hidden = getattr(cfg, "hidden_size", None) or cfg.dim
    with quiet():
        optimize_model(str(path), "bert", num_heads=heads, hidden_size=hidden, opt_level=0).save_model_to_file(
            str(path))
    return Path(path)


def build_encoder(family: str, head: str, path: str | Path, **options: Any) -> EncoderExport:
    """Build, re-randomise and export one encoder (options: the `EncoderSpec` fields); returns the export."""
    spec = EncoderSpec(family=family, head=head, **options)
    cfg = encoder_config(spec)
    model = build_model(spec, cfg)
    fam = _family(family)
    max_seq = cfg.max_position_embeddings - fam.position_offset
    if not 2 <= spec.seq_len <= max_seq:
        raise EdgebertError(f"seq_len {spec.seq_len} outside 2..{max_seq} ({family} max positions)")
    names = output_names(spec)
    module = output_module(model, input_names(spec), names)
    # A dynamic export is traced at batch 2 and another length than the inputs', so nothing baked from the trace
    # (batch 1, the sequence length) can pass for a symbolic dimension.
    trace = dataclasses.replace(spec, seq_len=min(max_seq, spec.seq_len + 5)) if spec.dynamic else spec
    sample = make_inputs(trace, cfg, batch=2 if spec.dynamic else 1)
    export_module(module, sample, path, names, exporter=spec.exporter, opset=spec.opset, dynamic=spec.dynamic,
                  max_seq=max_seq)
    if spec.ort_optimize:
        ort_optimize(path, cfg)
    return EncoderExport(Path(path), make_inputs(spec, cfg), names, cfg, spec)


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise EdgebertError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def activations() -> tuple[str, ...]:
    """Every `hidden_act` name transformers offers (its ACT2FN table)."""
    from transformers.activations import ACT2CLS

    return tuple(sorted(ACT2CLS))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build_encoder", description=__doc__.splitlines()[0])
    p.add_argument("--family", default="bert", choices=sorted(FAMILIES), help="model family (default bert)")
    p.add_argument("--head", default="sequence-classification", choices=list(HEADS),
                   help="task head (default sequence-classification; bare: the encoder alone)")
    p.add_argument("--hidden-act", default=None, help="activation (any transformers ACT2FN name; default: family's)")
    p.add_argument("--exporter", default="legacy", choices=EXPORTERS, help="torch.onnx exporter (default legacy)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: legacy 18, dynamo its own)")
    p.add_argument("--dynamic", action="store_true", help="symbolic batch and sequence axes")
    p.add_argument("--seq-len", type=int, default=16, help="sequence length of the export and the inputs")
    p.add_argument("--fp16", action="store_true", help="export the model in float16")
    p.add_argument("--size", default="tiny", choices=SIZES, help="tiny (hidden 32-64, 2 layers) or base (BERT-base)")
    p.add_argument("--attn", default="sdpa", choices=ATTENTION, help="transformers attention implementation")
    p.add_argument("--ort-optimize", action="store_true",
                   help="fuse with onnxruntime.transformers.optimizer (com.microsoft contrib ops)")
    p.add_argument("--pad", type=int, default=3, help="padding positions at the end of the sample inputs")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    p.add_argument("-o", "--output", type=Path, default=Path("out/encoder.onnx"), help="ONNX file to write")
    p.add_argument("--inputs", type=Path, help="also write matching sample inputs (.npz, batch 1) here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        done = build_encoder(
            args.family, args.head, args.output, hidden_act=args.hidden_act, exporter=args.exporter,
            opset=args.opset, dynamic=args.dynamic, seq_len=args.seq_len, fp16=args.fp16, size=args.size,
            attn_implementation=args.attn, ort_optimize=args.ort_optimize, pad=args.pad, seed=args.seed,
        )
        if args.inputs:
            args.inputs.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.inputs, **done.inputs)
    except EdgebertError as e:
        print(f"build_encoder: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {done.path} ({done.spec.name}; outputs {', '.join(done.output_names)})"
          + (f" and {args.inputs}" if args.inputs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
