"""Issue 14 regressions in the emulator: silently wrong results (class 1), metadata trusted (3), runaways (5)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from emu_helpers import read, run_sram
from onnx import TensorProto, helper

from edgebert.emulator import EmulatorInputError, Runner, run
from edgebert.emulator.machine import MAX_PENDING_TOKENS, MAX_TRACE_EVENTS, default_instruction_budget
from edgebert.emulator.memory import DirtyRanges
from edgebert.isa.assembler import assemble, assemble_file
from edgebert.isa.ebin import read_ebin, write_ebin
from edgebert.isa.encoding import make
from edgebert.isa.errors import EmulatorTrap, MetadataError
from edgebert.isa.program import Program, Segment, Symbol
from edgebert.isa.table import SPACES, UNITS

SEED = Path(__file__).resolve().parents[1] / "fuzz" / "seeds" / "encoder.s"
DRAM, SRAM = SPACES.index("dram"), SPACES.index("sram")
IDS = np.array([[0, 1, 2, 3, 3, 2, 1, 0]])
MASK = np.zeros((1, 8), np.float32)


@pytest.fixture(scope="module")
def encoder() -> Program:
    return assemble_file(SEED)


# ---- class 1: no silently wrong results ------------------------------------------------------------------------

def _ort_gather(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    graph = helper.make_graph(
        [helper.make_node("Gather", ["t", "i"], ["y"])], "g",
        [helper.make_tensor_value_info("i", TensorProto.INT64, list(ids.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(table, "t")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"i": ids})[0]


def test_token_ids_outside_the_vocabulary_trap_like_onnxruntime() -> None:
    table = np.arange(32, dtype=np.float32).reshape(4, 8) / 8
    weights = np.full(64, 9.0, np.float32)  # what an out-of-vocabulary row used to read
    envm = table.tobytes() + weights.tobytes()

    def gather(ids: np.ndarray):
        p = Program([make("gather", dst=0x100, table=0, table_space=SPACES.index("envm"), idx=0, rows=8, cols=8),
                     make("halt")],
                    [Segment("envm", 0, envm, "weights"), Segment("sram", 0, ids.astype(np.int32).tobytes())],
                    [Symbol("EMB", "envm", 0, 128), Symbol("W", "envm", 128, 256)])
        return read(run(p), 0x100, (8, 8))

    np.testing.assert_array_equal(gather(IDS[0]), _ort_gather(table, IDS)[0])
    bad = IDS.copy()
    bad[0, 5] = 4  # one past the 4-row table: W's bytes follow it in the same segment
    with pytest.raises(Exception, match="out of bounds|out of range|indices"):
        _ort_gather(table, bad)
    with pytest.raises(EmulatorTrap, match=r"gather index 4 \(row 5\) out of range for a table of 4 rows \(symbol 'EMB'"):
        gather(bad[0])


def test_the_fuzz_seed_traps_on_out_of_vocabulary_ids(encoder: Program) -> None:
    assert run(encoder, {"input_ids": IDS, "mask": MASK}).trap is None
    with pytest.raises(EmulatorTrap, match=r"gather index -1 \(row 0\) out of range"):
        run(encoder, {"input_ids": -IDS - 1, "mask": MASK})


def test_gather_bounds_by_data_segment_without_symbols() -> None:
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    code = [make("gather", dst=0x100, table=0, table_space=DRAM, idx=0x40, rows=2, cols=4)]
    p = Program([*code, make("halt")], [Segment("dram", 0, table.tobytes(), "emb"),
                                       Segment("sram", 0x40, np.array([2, 3], np.int32).tobytes())])
    with pytest.raises(EmulatorTrap, match=r"gather index 3 \(row 1\) .* table of 3 rows \(data segment 'emb'"):
        run(p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool, np.complex64, "<U2"])
def test_token_ids_must_be_integers(encoder: Program, dtype) -> None:
    with pytest.raises(EmulatorInputError, match=r"input 'input_ids': .* array given, the program takes integer"):
        run(encoder, {"input_ids": IDS.astype(dtype), "mask": MASK})


def test_float_inputs_refuse_integers_and_ids_refuse_int32_overflow(encoder: Program) -> None:
    with pytest.raises(EmulatorInputError, match="input 'mask': int64 array given, the program takes float32"):
        run(encoder, {"input_ids": IDS, "mask": MASK.astype(np.int64)})
    with pytest.raises(EmulatorInputError, match="value 12884901888 does not fit the int32"):
        run(encoder, {"input_ids": IDS * 2**32, "mask": MASK})
    ok = run(encoder, {"input_ids": IDS.astype(np.uint8), "mask": MASK.astype(np.float64)})  # lossless conversions
    assert ok.trap is None


def test_softmax_propagates_nan_and_inf_like_onnxruntime() -> None:
    x = np.array([[1.0, np.nan, 2.0, 0.5], [1.0, np.inf, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0], [-np.inf] * 4], np.float32)
    result = run_sram([make("softmax", dst=0x100, src=0, rows=4, cols=4)], {0: x})
    got = read(result, 0x100, (4, 4))
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "s",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x[:3]})[0]
    np.testing.assert_allclose(got[:3], ref, rtol=1e-6, equal_nan=True)
    assert np.isnan(got[0]).all() and np.isnan(got[1]).all()
    assert (got[3] == 0).all()  # fully masked (all -inf) rows stay zeros, as documented


def test_gather_with_empty_rows_is_a_clean_trap() -> None:
    result = run_sram([make("gather", dst=0x100, table=0, idx=0x40, rows=2, cols=0)], raise_on_trap=False)
    assert "cols = 0 and table_stride = 0" in str(result.trap) and "internal" not in str(result.trap)


# ---- class 3: metadata checked when the program is read --------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "message"), [
    ("outputs", [{"name": "y", "space": "dram", "address": 0, "shape": [-1]}], r"outputs\[0\]\.shape\[0\]: -1 is outside"),
    ("outputs", [{"name": "y", "space": "dram", "address": 0}], r"outputs\[0\]: missing key 'shape'"),
    ("outputs", {"name": "y"}, "outputs: expected a list, got dict"),
    ("inputs", [{"name": "x", "space": "dram", "address": "0", "shape": [1]}], r"inputs\[0\]\.address: expected an integer"),
    ("inputs", [{"name": "x", "space": "dram", "address": 0, "shape": [65536, 65536]}], "does not fit the 32-bit"),
    ("inputs", [{"name": "x", "space": "rom", "address": 0, "shape": [1]}], r"inputs\[0\]\.space: unknown memory space"),
    ("inputs", [{"name": "x", "space": "dram", "address": 0, "shape": [1], "dtype": ["int64"]}], "unsupported dtype"),
    ("exit_layer", {"space": "dram"}, "exit_layer: missing key 'address'"),
    ("exit_layer", [0], "exit_layer: expected an object, got list"),
    ("thresholds", [0.5, "x"], r"thresholds\[1\]: expected a number"),
    ("multitask", {"tasks": [], "task_select": {"space": "dram", "address": 0}}, "multitask.tasks: no tasks"),
    # found by the meta campaign: a task region without its loaded word crashed task preloading (KeyError)
    ("multitask", {"tasks": [{"name": "a", "index": 0, "num_labels": 2,
                              "block": {"space": "envm", "address": 0, "bytes": 64}}],
                   "task_select": {"space": "dram", "address": 0},
                   "task_region": {"space": "sram", "address": 0, "bytes": 64}},
     "task_region and loaded_word come together"),
])
def test_bad_metadata_fails_at_load_naming_the_field(encoder: Program, key: str, value, message: str) -> None:
    data = bytearray(write_ebin(encoder))
    bad = Program(encoder.code, encoder.segments, encoder.symbols, {**encoder.metadata, key: value})
    with pytest.raises(MetadataError, match=message):
        write_ebin(bad)
    with pytest.raises(EmulatorInputError, match=message):
        Runner(bad)
    assert read_ebin(bytes(data)).metadata == encoder.metadata


def test_io_outside_this_hardwares_memory_fails_before_the_run(encoder: Program) -> None:
    meta = {**encoder.metadata, "outputs": [{"name": "y", "space": "sram", "address": 0, "shape": [1 << 28]}]}
    with pytest.raises(EmulatorInputError, match="output 'y'.*lies outside sram"):
        Runner(Program(encoder.code, encoder.segments, encoder.symbols, meta))


# ---- class 5: runaways end in seconds, memory does not grow with simulated time ----------------------------------

def test_jmp_loop_traps_within_seconds() -> None:
    p = assemble("loop: jmp loop\nhalt\n")
    start = time.monotonic()
    result = run(p, raise_on_trap=False)
    assert time.monotonic() - start < 10
    assert f"instruction budget of {default_instruction_budget(p):,} executed instructions" in str(result.trap)
    assert run(p, raise_on_trap=False, max_instructions=50).report["instructions"] == 50


def test_a_store_loop_keeps_its_bookkeeping_bounded() -> None:
    p = assemble("loop: addi r1, r1, 4\n sw r1, dram[r1]\n jmp loop\nhalt\n")
    runner = Runner(p, max_instructions=30_000)
    result = runner.run(raise_on_trap=False)
    assert "instruction budget" in str(result.trap)
    assert len(result.machine.dirty) <= result.machine.dirty.limit  # 10,000 stores, bounded ranges
    covered = list(result.machine.dirty)
    assert all(any(lo <= a and a + 4 <= hi for s, lo, hi in covered if s == DRAM) for a in range(4, 40_000, 4 * 97))
    again = runner.run(raise_on_trap=False)  # the reset clears what the stores wrote
    assert again.report["instructions"] == 30_000


def test_dirty_ranges_collapse_to_a_cover() -> None:
    d = DirtyRanges(limit=8)
    for i in range(100):
        d.append((DRAM, 8 * i, 8 * i + 4))
    d.append((DRAM, 8, 12))
    assert len(d) <= 8
    assert all(any(lo <= 8 * i and 8 * i + 4 <= hi for _, lo, hi in d) for i in range(100))


def test_unconsumed_signals_in_a_loop_trap() -> None:
    ld = 1 << UNITS.index("ld")
    p = Program([make("nop", signal=ld), make("jmp", target=0), make("halt")])
    result = run(p, raise_on_trap=False)
    assert f"token queue ctl->ld holds {MAX_PENDING_TOKENS + 1:,} unconsumed signals" in str(result.trap)


def test_trace_is_capped(monkeypatch) -> None:
    import edgebert.emulator.machine as machine

    monkeypatch.setattr(machine, "MAX_TRACE_EVENTS", 10)
    result = run(Program([make("nop")] * 20 + [make("halt")]), trace=True)
    assert len(result.machine.trace) == 10 and result.machine.trace_truncated
    assert MAX_TRACE_EVENTS >= 10**6


def test_segment_symbols_bound_gather_rows_in_the_compiled_layout() -> None:
    # The compiler's layout: one constant per data segment, each with a sized symbol.
    emb = np.arange(24, dtype=np.float32).reshape(6, 4)
    other = np.full(8, 7.0, np.float32)
    p = Program(
        [make("gather", dst=0x100, table=0, table_space=DRAM, idx=0x40, rows=2, cols=4), make("halt")],
        [Segment("dram", 0, emb.tobytes(), "emb"), Segment("dram", 96, other.tobytes(), "w"),
         Segment("sram", 0x40, np.array([5, 0], np.int32).tobytes())],
        [Symbol("emb", "dram", 0, 96), Symbol("w", "dram", 96, 32)])
    np.testing.assert_array_equal(read(run(p), 0x100, (2, 4)), emb[[5, 0]])
    bad = Program(p.code, [*p.segments[:2], Segment("sram", 0x40, np.array([6, 0], np.int32).tobytes())], p.symbols)
    with pytest.raises(EmulatorTrap, match=r"index 6 \(row 0\) out of range for a table of 6 rows"):
        run(bad)

