"""The lowering's structure: composites lowered as units through their table (never inlined), a clear error for a
composite it does not know, typed errors and the pipeline's stage list."""

from __future__ import annotations

import pytest
from relax_helpers import tensor_var
from tvm import relax

from edgebert.compiler.errors import SramOverflow, SramTooSmall
from edgebert.compiler.lower import core
from edgebert.compiler.lower.composites import COMPOSITES
from edgebert.compiler.pipeline import STAGES, compile_onnx, compile_relax, format_timings
from edgebert.compiler.relax_passes import fusion
from edgebert.frontend.models.hf_albert_export import ExportSpec, build_and_export
from edgebert.isa import abi
from edgebert.isa.errors import CompileError
from edgebert.isa.hardware import load_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path, _ = build_and_export(tmp_path_factory.mktemp("tiny") / "m.onnx", preset="tiny", spec=ExportSpec(seq_len=16),
                               seed=3)
    return path


def _module_calling(composite: str) -> relax.IRModule:
    """main(x) = f(x) for a private function f whose Composite attribute is `composite` (body: tanh)."""
    fb = relax.BlockBuilder()
    p = tensor_var("p", (1, 4))
    with fb.function("f", [p], attrs={"Composite": composite, "Primitive": True}, private=True):
        with fb.dataflow():
            out = fb.emit_output(relax.op.tanh(p))
        fb.emit_func_output(out)
    bb = relax.BlockBuilder()
    gv = bb.add_func(fb.get()["f"], "frob")
    x = tensor_var("x", (1, 4))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_output(relax.Call(gv, [x]), "y")
        bb.emit_func_output(y)
    return bb.get()


def test_every_composite_the_passes_make_has_a_handler():
    assert set(COMPOSITES) == set(fusion.COMPOSITES)


def test_unknown_composite_names_itself_and_its_binding():
    with pytest.raises(CompileError, match=r"main: y = edgebert\.frobnicate \(frob: a composite the backend has no "):
        compile_relax(_module_calling("edgebert.frobnicate"), output_names=["y"])


def _counting(handler, calls: list):
    def counted(scope, call):
        calls.append(call.composite)
        return handler(scope, call)

    return counted


def test_composites_are_lowered_as_units_never_inlined(tiny, monkeypatch):
    """Only `main` and the layer function are lowered as function bodies; every composite goes to its handler."""
    bodies, calls = [], []
    lower_function = core.Lowerer.lower_function

    def spy(self, func, args, name, *rest, **kw):
        bodies.append(core.composite_of(func))
        return lower_function(self, func, args, name, *rest, **kw)

    monkeypatch.setattr(core.Lowerer, "lower_function", spy)
    handlers = {name: _counting(handler, calls) for name, handler in COMPOSITES.items()}
    monkeypatch.setattr("edgebert.compiler.lower.program.COMPOSITES", handlers)
    compile_onnx(tiny)
    assert bodies and not any(bodies), bodies  # main + edgebert_layer_0: no composite body lowered
    assert {"edgebert.dense", "edgebert.attention", "edgebert.layer_norm", "edgebert.gelu_tanh", "edgebert.embedding",
            "edgebert.mask_bias", "edgebert.pooler"} <= set(calls)


def test_sram_too_small_is_typed_and_suggests_a_size_that_compiles(tiny):
    """Below the smallest SRAM one block of the largest op fits in, the error names the op, its block and the bytes
    it needs, and suggests a size; that size compiles (the memory-hierarchy plan)."""
    import dataclasses

    hw = load_config("ideal-256mac")  # one SRAM to resize (a buffer set is fixed)

    def sized(n: int):
        return dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=dataclasses.replace(hw.memory.sram,
                                                                                                    size_bytes=n)))

    with pytest.raises(SramOverflow) as info:
        compile_onnx(tiny, hw=sized(8192))
    err = info.value
    assert isinstance(err, SramTooSmall) and err.size == 8192 and err.need > 8192 * 0.9 and err.op in str(err)
    assert "SRAM too small" in str(err) and f"memory.sram.size_bytes = {err.suggest}" in str(err)
    assert compile_onnx(tiny, hw=sized(err.suggest)).memory_plan is not None


def test_sram_too_small_search_is_bounded_and_says_how_far_it_looked(tiny, monkeypatch):
    """The what-if search stops after WHAT_IF_STEPS steps or once WHAT_IF_SECONDS have passed (here: after its first
    step); when no size it tried compiles, the error names the largest one instead of a suggestion."""
    import dataclasses

    from edgebert.compiler import pipeline

    hw = load_config("ideal-256mac")
    sram = dataclasses.replace(hw.memory.sram, size_bytes=2048)
    fit, calls, failures = pipeline._fit_blocked, [], []

    def nothing_fits(c, stages):  # the real first attempt; every what-if step then fails as a too-large model would
        calls.append(c.hw.memory.sram.size_bytes)
        failures.append(fit(c, stages) if len(calls) == 1 else failures[0])
        return failures[-1]

    monkeypatch.setattr(pipeline, "_fit_blocked", nothing_fits)
    monkeypatch.setattr(pipeline, "WHAT_IF_SECONDS", 0.0)
    with pytest.raises(SramTooSmall) as info:
        compile_onnx(tiny, hw=dataclasses.replace(hw, memory=dataclasses.replace(hw.memory, sram=sram)))
    err = info.value
    assert len(calls) == 2 and calls[0] == 2048 and err.suggest == 0 and err.tried == calls[1] > 2048, calls
    assert f"no SRAM up to {err.tried} bytes compiles either" in str(err)


def test_stage_list_is_the_table_of_contents(tiny):
    assert [s.name for s in STAGES] == ["load", "import", "relax", "check", "layer-loops", "compression", "early-exit",
                                        "lower", "plan-memory", "hierarchy", "lower-blocked", "plan-memory-blocked",
                                        "schedule", "emit", "dvfs-plan"]
    timings: dict[str, float] = {}
    compile_onnx(tiny, timings=timings)
    ran = [line.split()[0] for line in format_timings(timings) if not line.startswith("relax:")]
    # early-exit and dvfs-plan only run when the options ask for them, the hierarchy stages when SRAM overflows
    assert ran == ["load", "import", "relax", "check", "layer-loops", "compression", "lower", "plan-memory",
                   "schedule", "emit", "total"]


def test_abi_registers_are_distinct():
    regs = {k: v for k, v in vars(abi).items() if k.startswith("R_")}
    assert len(set(regs.values())) == len(regs) and regs["R_ZERO"] == 0
    floats = {k: v for k, v in vars(abi).items() if k.startswith("F_")}
    assert len(set(floats.values())) == len(floats)
