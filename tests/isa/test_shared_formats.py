"""The shared helpers in isa/: bit patterns, durations and the EdgeBERT artifact's trace and table formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebert.isa.bits import bits_f32, f32_bits, sparse_mask_bytes
from edgebert.isa.errors import EdgebertError
from edgebert.isa.traces import (
    read_entropy_array,
    read_entropy_row,
    read_entropy_trace,
    read_lookup_table,
    write_entropy_trace,
    write_lookup_table,
)
from edgebert.isa.units import parse_duration

SST2 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "edgebert-sst2"


def test_f32_bits_round_trip():
    assert f32_bits(1.0) == 0x3F800000
    assert f32_bits(-2.5) == 0xC0200000
    assert bits_f32(f32_bits(0.1)) == float(np.float32(0.1))


def test_sparse_mask_bytes_pads_to_words():
    assert sparse_mask_bytes(16, 16) == 32
    assert sparse_mask_bytes(1, 1) == 4
    assert sparse_mask_bytes(3, 11) == 8


@pytest.mark.parametrize(("text", "seconds"), [("50ms", 0.05), ("0.05s", 0.05), ("50000us", 0.05), ("100ns", 1e-7)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["50", "-1ms", "0s", "1e999s", "fast"])
def test_parse_duration_rejects(text):
    with pytest.raises(EdgebertError):
        parse_duration(text)


def test_entropy_trace_round_trip(tmp_path):
    ent = np.array([[0.5, 0.25, 0.125], [0.0, 1.0, 0.75]], np.float32)
    write_entropy_trace(tmp_path / "t.txt", ent)
    np.testing.assert_array_equal(read_entropy_array(tmp_path / "t.txt"), ent.astype(np.float64))
    assert read_entropy_row(tmp_path / "t.txt", 1) == [0.0, 1.0, 0.75]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe0.1,0.2\n", "not UTF-8"),
        (b"0.1,abc\n", "line 1: 'abc' is not a number"),
        (b"0.1,0.2\n0.1,nan\n", "line 2: non-finite"),
        (b"0.1,-0.2\n", "negative"),
    ],
)
def test_entropy_trace_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(EdgebertError, match=message):
        read_entropy_trace(path)


def test_entropy_row_out_of_range(tmp_path):
    (tmp_path / "t.txt").write_text("0.1,0.2\n")
    with pytest.raises(EdgebertError, match="row 3 out of range"):
        read_entropy_row(tmp_path / "t.txt", 3)


def test_lookup_table_round_trip_and_checks(tmp_path):
    table = np.zeros((100, 3))
    table[:, 0] = np.arange(100) * 0.01
    table[:, 1:] = 0.3
    write_lookup_table(tmp_path / "t.csv", table)
    np.testing.assert_array_equal(read_lookup_table(tmp_path / "t.csv"), table)
    (tmp_path / "short.csv").write_text("0.0,1.0\n")
    with pytest.raises(EdgebertError, match="1 rows"):
        read_lookup_table(tmp_path / "short.csv")


@pytest.mark.skipif(not SST2.is_dir(), reason="shared SST-2 data not beside the checkout")
def test_artifacts_files_round_trip_byte_for_byte(tmp_path):
    trace = read_entropy_array(SST2 / "sst2_eval_entropy.txt")
    assert trace.shape == (872, 12)
    write_entropy_trace(tmp_path / "t.txt", trace)
    assert (tmp_path / "t.txt").read_text() == (SST2 / "sst2_eval_entropy.txt").read_text()
    table = read_lookup_table(SST2 / "sst2_lookup_table.csv")
    assert table.shape == (100, 11)
    write_lookup_table(tmp_path / "l.csv", table)
    assert (tmp_path / "l.csv").read_text() == (SST2 / "sst2_lookup_table.csv").read_text()


def test_trace_round_trip_float32(tmp_path):
    ent = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    write_entropy_trace(tmp_path / "t.txt", ent)
    lines = (tmp_path / "t.txt").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith(" ") and lines[0].count(",  ") == 3
    np.testing.assert_array_equal(read_entropy_array(tmp_path / "t.txt").astype(np.float32), ent)


def test_lookup_table_of_a_two_layer_model_has_column_0_only(tmp_path):
    write_lookup_table(tmp_path / "t.csv", (np.arange(100) * 0.01)[:, None])
    assert read_lookup_table(tmp_path / "t.csv").shape == (100, 1)
    (tmp_path / "ragged.csv").write_text("".join(f"{i / 100},0.5\n" for i in range(99)) + "0.99\n")
    with pytest.raises(EdgebertError, match="same number"):
        read_lookup_table(tmp_path / "ragged.csv")
