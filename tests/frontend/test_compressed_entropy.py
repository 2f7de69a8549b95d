"""Entropy trace and lookup-table files: the EdgeBERT artifact's formats, and the table-building rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebert.frontend.compressed_entropy import (
    build_lookup_table,
    lookup_row,
    predict_exit_layer,
    read_entropy_trace,
    read_lookup_table,
    write_entropy_trace,
    write_lookup_table,
)

REF = Path(__file__).resolve().parents[3] / "shared" / "data" / "edgebert-sst2"
if not REF.exists():
    REF = Path("/work/shared/data/edgebert-sst2")
needs_ref = pytest.mark.skipif(not (REF / "sst2_eval_entropy.txt").exists(), reason="EdgeBERT SST-2 data absent")


@needs_ref
def test_trace_format_is_byte_identical_to_reference(tmp_path):
    ref_text = (REF / "sst2_eval_entropy.txt").read_text()
    ent = read_entropy_trace(REF / "sst2_eval_entropy.txt")
    assert ent.shape == (872, 12)
    write_entropy_trace(tmp_path / "t.txt", ent)
    assert (tmp_path / "t.txt").read_text() == ref_text


@needs_ref
def test_lookup_format_is_byte_identical_to_reference(tmp_path):
    table = read_lookup_table(REF / "sst2_lookup_table.csv")
    assert table.shape == (100, 11)
    write_lookup_table(tmp_path / "l.csv", table)
    assert (tmp_path / "l.csv").read_text() == (REF / "sst2_lookup_table.csv").read_text()
    built = build_lookup_table(read_entropy_trace(REF / "sst2_eval_entropy.txt"))
    assert built.shape == table.shape
    np.testing.assert_array_equal(built[:, 0], table[:, 0])


def test_trace_round_trip_float32(tmp_path):
    ent = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    write_entropy_trace(tmp_path / "t.txt", ent)
    lines = (tmp_path / "t.txt").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith(" ") and lines[0].count(",  ") == 3
    np.testing.assert_array_equal(read_entropy_trace(tmp_path / "t.txt").astype(np.float32), ent)


def test_build_lookup_table_means_and_fill():
    # layers: L = 4 -> table columns: layer-1 entropy, predicted layers 2 and 3
    ent = np.array(
        [
            [0.101, 0.5, 0.4, 0.0],
            [0.099, 0.3, 0.2, 0.0],  # rows 0.10: mean (0.4, 0.3)
            [0.304, 0.9, 0.7, 0.0],  # row 0.30
            [0.296, 0.7, 0.5, 0.0],  # row 0.30: mean (0.8, 0.6)
        ]
    )
    table = build_lookup_table(ent)
    assert table.shape == (100, 3)
    np.testing.assert_allclose(table[:, 0], np.arange(100) / 100)
    np.testing.assert_allclose(table[10, 1:], [0.4, 0.3])
    np.testing.assert_allclose(table[30, 1:], [0.8, 0.6])
    np.testing.assert_allclose(table[20, 1:], [0.6, 0.45])  # interpolated between filled rows
    np.testing.assert_allclose(table[0, 1:], [0.4, 0.3])  # constant below the first filled row
    np.testing.assert_allclose(table[99, 1:], [0.8, 0.6])  # and above the last
    assert lookup_row(1.7) == 99 and lookup_row(0.004) == 0 and lookup_row(0.006) == 1


def test_predict_exit_layer_rule():
    table = np.zeros((100, 3))
    table[:, 0] = np.arange(100) / 100
    table[:, 1] = 0.5
    table[:, 2] = 0.1
    assert predict_exit_layer(table, 0.05, threshold=0.2, num_layers=4) == 1
    assert predict_exit_layer(table, 0.6, threshold=0.2, num_layers=4) == 3
    assert predict_exit_layer(table, 0.6, threshold=0.05, num_layers=4) == 4
