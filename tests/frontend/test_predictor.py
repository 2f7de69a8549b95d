"""EdgeBERT's entropy predictor: building the lookup table, and table -> predicted exit layer per entropy bin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebert.frontend.predictor import (
    build_lookup_table,
    entropy_bin,
    main,
    predict_exit_layer,
    predicted_exit_layers,
)
from edgebert.isa.errors import EdgebertError
from edgebert.isa.traces import read_entropy_array, read_lookup_table, write_lookup_table

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "edgebert-sst2"
needs_data = pytest.mark.skipif(not (DATA / "sst2_lookup_table.csv").exists(), reason="shared data absent")


def _table(columns: list[float]) -> np.ndarray:
    """100 rows with column 0 = bin / 100 and the same predicted entropies in every row."""
    t = np.zeros((100, 1 + len(columns)))
    t[:, 0] = np.arange(100) / 100
    t[:, 1:] = columns
    return t


def test_first_layer_below_threshold_else_last() -> None:
    t = _table([0.5, 0.4, 0.2, 0.1])  # layers 2..5 of a 6-layer model
    assert set(predicted_exit_layers(t, 0.3, 6).tolist()) == {4}
    assert set(predicted_exit_layers(t, 0.6, 6).tolist()) == {2}
    assert set(predicted_exit_layers(t, 0.05, 6).tolist()) == {6}  # never below: the last layer
    assert set(predicted_exit_layers(t, 0.2, 6).tolist()) == {5}  # strictly below


def test_rows_differ_per_bin() -> None:
    t = _table([0.0, 0.0])
    t[:, 1] = np.linspace(0.0, 0.99, 100)  # layer 2's prediction grows with the layer-1 entropy
    t[:, 2] = 0.1
    got = predicted_exit_layers(t, 0.5, 4)
    assert got[:50].tolist() == [2] * 50 and got[51:].tolist() == [3] * 49
    assert got.dtype == np.int32
    assert predict_exit_layer(t, 0.704, 0.5, 4) == 3 and int(entropy_bin(0.704)) == 70
    assert int(entropy_bin(5.0)) == 99 and int(entropy_bin(-1.0)) == 0


def test_bad_tables() -> None:
    with pytest.raises(EdgebertError, match="columns"):
        predicted_exit_layers(_table([0.1, 0.2]), 0.3, 12)
    with pytest.raises(EdgebertError, match="rows"):
        predicted_exit_layers(np.zeros((50, 3)), 0.3, 4)
    bad = _table([0.1, 0.2])
    bad[:, 0] = 0.5
    with pytest.raises(EdgebertError, match="column 0"):
        predicted_exit_layers(bad, 0.3, 4)


@needs_data
@pytest.mark.parametrize("threshold", [0.23, 0.28, 0.46])
def test_real_table_matches_the_authors_rule(threshold: float) -> None:
    table = read_lookup_table(DATA / "sst2_lookup_table.csv")
    assert table.shape == (100, 11)
    got = predicted_exit_layers(table, threshold, 12)
    for b in range(100):
        h1 = b / 100
        if h1 >= threshold:  # below the threshold the program already exited at layer 1
            assert got[b] == predict_exit_layer(table, h1, threshold, 12)
        assert 2 <= got[b] <= 12
    assert np.all(np.diff(got) >= 0)  # this table predicts later exits for less confident first layers


@needs_data
def test_real_table_known_bins() -> None:
    got = predicted_exit_layers(read_lookup_table(DATA / "sst2_lookup_table.csv"), 0.23, 12)
    assert got[28] == 2 and got[29] == 3 and got[35] == 4 and got[50] == 5 and got[99] == 6


@needs_data
def test_build_from_real_trace_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table.csv"
    assert main(["build", "--entropies", str(DATA / "sst2_eval_entropy.txt"), "-o", str(out)]) == 0
    table = read_lookup_table(out)
    assert table.shape == (100, 11)
    ent = np.loadtxt(DATA / "sst2_eval_entropy.txt", delimiter=",")
    rows = np.clip(np.rint(ent[:, 0] * 100), 0, 99).astype(int)
    r = int(np.bincount(rows).argmax())  # the most populated row holds the mean of its sentences
    np.testing.assert_allclose(table[r, 1:], ent[rows == r, 1:-1].mean(axis=0))
    capsys.readouterr()
    assert main(["show", "--table", str(out), "--threshold", "0.23", "--layers", "12"]) == 0
    assert "predicted exit layer" in capsys.readouterr().out


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--table", str(tmp_path / "missing.csv"), "--threshold", "0.2", "--layers", "4"]) == 2
    assert "predictor: error:" in capsys.readouterr().err
    t = tmp_path / "t.csv"
    write_lookup_table(t, _table([0.1, 0.2]))
    assert main(["show", "--table", str(t), "--threshold", "0.2", "--layers", "12"]) == 2
    with pytest.raises(EdgebertError):
        build_lookup_table(np.zeros((0, 12)))


@needs_data
def test_built_table_keeps_the_artifacts_column_0() -> None:
    table = read_lookup_table(DATA / "sst2_lookup_table.csv")
    built = build_lookup_table(read_entropy_array(DATA / "sst2_eval_entropy.txt"))
    assert built.shape == table.shape
    np.testing.assert_array_equal(built[:, 0], table[:, 0])


def test_build_lookup_table_means_and_fill() -> None:
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
    assert entropy_bin(1.7) == 99 and entropy_bin(0.004) == 0 and entropy_bin(0.006) == 1


def test_predict_exit_layer_rule() -> None:
    table = np.zeros((100, 3))
    table[:, 0] = np.arange(100) / 100
    table[:, 1] = 0.5
    table[:, 2] = 0.1
    assert predict_exit_layer(table, 0.05, threshold=0.2, num_layers=4) == 1
    assert predict_exit_layer(table, 0.6, threshold=0.2, num_layers=4) == 3
    assert predict_exit_layer(table, 0.6, threshold=0.05, num_layers=4) == 4
