"""HF ALBERT (both exporters, several configs) through load_onnx -> to_relax -> relax_passes: TVM's CPU build of
the result equals onnxruntime, the composites and layer loops are where the IR contract says."""

from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest
import tvm
from relax_helpers import calls_in, composite_calls, run_cpu
from tvm import relax

from edgebert.compiler.pipeline import relax_passes
from edgebert.compiler.relax_passes import find_layer_loops, run_passes
from edgebert.frontend import load_onnx, to_relax
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export, make_inputs
from edgebert.isa.errors import CompileError

# name: (preset, spec, pad, config overrides, expected loop counts per layer function)
CONFIGS = {
    "tiny": ("tiny", ExportSpec(seq_len=16), 0, {}, [3]),
    "dynamo-seq13-pad": ("tiny", ExportSpec(seq_len=13, exporter="dynamo",
                                            outputs=("logits", "last_hidden_state")), 3, {}, [3]),
    "groups2-seq13-pad": ("tiny-groups2", ExportSpec(seq_len=13), 4, {}, [2, 2]),
    "token-types-2layers": ("tiny", ExportSpec(seq_len=10, token_type_ids=True,
                                               outputs=("pooler_output",)), 1, {"num_hidden_layers": 2}, [2]),
    # two different layers per group application: the loop body holds both
    "inner-group2": ("tiny", ExportSpec(seq_len=11), 2, {"num_hidden_layers": 3, "inner_group_num": 2}, [3]),
    # every layer has its own weights (as BERT's): one function taking them as trailing parameters, called 3 times
    "unshared-3groups": ("tiny", ExportSpec(seq_len=11), 2, {"num_hidden_layers": 3, "num_hidden_groups": 3}, [3]),
}
LAYER_CALLS = {"inner-group2": 3}
WEIGHTS = {"unshared-3groups": 16}  # per-layer constants: q, k, v, out, ffn, ffn_out (W, b), 2 x LayerNorm (g, b)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def compiled(request, tmp_path_factory):
    """(name, ONNX path, inputs, module after relax_passes, timings) for one config, built once."""
    preset, spec, pad, overrides, _ = CONFIGS[request.param]
    path, cfg = build_and_export(tmp_path_factory.mktemp(request.param) / "m.onnx", preset, spec, seed=7,
                                 **overrides)
    inputs = make_inputs(spec.seq_len, cfg.vocab_size, pad=pad, seed=11, token_type_ids=spec.token_type_ids)
    timings: list = []
    mod = run_passes(to_relax(load_onnx(path)), relax_passes(), timings=timings)
    return request.param, path, inputs, mod, timings


def test_cpu_build_matches_onnxruntime(compiled):
    name, path, inputs, mod, _ = compiled
    session = ort.InferenceSession(str(path))
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    want = session.run(None, feed)
    got = run_cpu(mod, *feed.values())
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= 1e-4, name


def test_layer_loops_found(compiled):
    name, _, _, mod, _ = compiled
    loops = find_layer_loops(mod)
    assert [lp.count for lp in loops] == CONFIGS[name][4]
    assert [lp.func_name for lp in loops] == [f"edgebert_layer_{g}" for g in range(len(loops))]
    for lp in loops:
        layer = mod[lp.func_name]
        assert lp.num_carried == 1 and lp.num_outputs == 1 and lp.num_weights == WEIGHTS.get(name, 0)
        assert [p.ty.ndim for p in layer.params][:2] == [3, 4]  # hidden state, additive mask row
        assert [int(d) for d in layer.params[1].ty.shape][:3] == [1, 1, 1]


def test_only_contract_ops_remain(compiled):
    name, _, _, mod, _ = compiled
    counts = composite_calls(mod)
    loops = CONFIGS[name][4]
    layers = LAYER_CALLS.get(name, sum(loops))
    bodies = {"inner-group2": 2}.get(name, len(loops))  # layer bodies in the IR
    assert counts["edgebert.attention"] == bodies  # once per layer function body (or inline layer)
    assert counts["edgebert.mask_bias"] == 1 and counts["edgebert.gelu_tanh"] == bodies
    assert counts["edgebert.embedding"] == (2 if "token-types" in name else 1)
    assert counts["edgebert.pooler"] == 1  # every config returns logits or pooler_output
    plain = {c.op.name for c in calls_in(mod) if isinstance(c.op, tvm.ir.Op)}
    assert plain <= {"relax.add", "relax.take"}, plain
    calls = [c for c in calls_in(mod)
             if isinstance(c.op, relax.GlobalVar) and re.fullmatch(r"edgebert_layer_\d+", c.op.name_hint)]
    assert len(calls) == layers


def test_pass_timings_are_recorded(compiled):
    _, _, _, _, timings = compiled
    names = [n for n, _ in timings]
    assert names[:2] == ["edgebert.FoldConstantsNumpy", "edgebert.FoldRemainingConstants"] and names[-1] == "edgebert.OutlineLayerLoops"
    assert all(t >= 0 for _, t in timings)


def test_dump_ir_writes_one_file_per_pass(tmp_path):
    path, _ = build_and_export(tmp_path / "m.onnx", "tiny", ExportSpec(seq_len=8), num_hidden_layers=2)
    passes = relax_passes()
    run_passes(to_relax(load_onnx(path)), passes, dump_dir=tmp_path / "ir")
    files = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert files[0] == "00_input.py" and len(files) == len(passes) + 1
    assert files[-1] == f"{len(passes):02d}_edgebert_OutlineLayerLoops.py"
    assert "edgebert_layer_0" in (tmp_path / "ir" / files[-1]).read_text()


def test_failing_pass_is_a_compile_error_naming_it():
    @tvm.transform.module_pass(opt_level=0, name="Exploding")
    def exploding(mod, _ctx):
        raise ValueError("boom\nlast line")

    with pytest.raises(CompileError, match="pass Exploding failed: last line"):
        run_passes(tvm.IRModule(), [exploding])
