"""The public API (`import edgebert as eb`): cheap to import, programs saved and loaded both ways, clear errors and
warnings, bench notes, and examples/notebook.py end to end on a tiny early-exit model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import edgebert as eb

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))
from compiled_ee import SEQ, export_compressed  # noqa: E402

from edgebert.frontend.models.synthetic_tasks import make_dataset  # noqa: E402

LAYERS = 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained 4-layer compressed ALBERT with exit heads and 12 labelled sentences (.npz, sentence axis first)."""
    folder = tmp_path_factory.mktemp("api")
    onnx = export_compressed(folder / "tiny.onnx", LAYERS, 0.2)
    data = make_dataset("sentiment", 12, SEQ, seed=3)
    npz = folder / "sentences.npz"
    np.savez(npz, input_ids=data.input_ids.astype(np.int64), attention_mask=data.attention_mask.astype(np.int64),
             labels=data.labels.astype(np.int64))
    return onnx, npz


@pytest.fixture(scope="module")
def early(tiny: tuple[Path, Path]) -> eb.Program:
    return eb.compile(tiny[0], early_exit=True)


def _sentence(npz: Path, i: int) -> dict[str, np.ndarray]:
    d = np.load(npz)
    return {k: d[k][i : i + 1] for k in ("input_ids", "attention_mask")}


def test_import_is_cheap() -> None:
    code = ("import sys, edgebert as eb; eb.compile, eb.emulate, eb.bench, eb.Program; "
            "print(sorted(m for m in ('torch', 'tvm', 'ray', 'onnx', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
    assert eb.__version__ != "unknown" and set(eb.__all__) <= set(dir(eb))


def test_save_and_load_both_formats(early: eb.Program, tmp_path: Path) -> None:
    binary, text = eb.save(early, tmp_path / "p.ebin"), eb.save(early, tmp_path / "p.s")
    again = eb.save(eb.load(text), tmp_path / "again.ebin")
    assert binary.read_bytes() == again.read_bytes()


def test_emulate_result_and_report(early: eb.Program, tiny: tuple[Path, Path], tmp_path: Path) -> None:
    result = eb.emulate(early, _sentence(tiny[1], 0), trace=True, name="tiny")
    report = result.report
    assert report["program"] == "tiny" and report.cycles == report["cycles"] and result.exit_layer in range(1, 5)
    assert result.outputs["logits"].shape == (1, 2) and result.trace["traceEvents"]
    assert "matmul" in report.op_classes() and [r["region"] for r in report.layers()][:2] == ["before layer 1", "layer 1"]
    assert "µJ" in report.summary() or "nJ" in report.summary()
    report.save_json(tmp_path / "r.json")
    report.save_csv(tmp_path / "r.csv")
    result.save_trace(tmp_path / "t.json")
    assert json.loads((tmp_path / "r.json").read_text())["breakdown"]["roofline"]["op_classes"]["matmul"]
    full = eb.emulate(early, _sentence(tiny[1], 0), early_exit=False, profile=False)
    assert len(full.entropies) == LAYERS - 1 and "breakdown" not in full.report  # heads 1..L-1; the last always exits
    with pytest.raises(eb.EdgebertError, match="breakdown"):
        full.report.op_classes()


def test_replaying_entropies_says_what_it_needs(early: eb.Program) -> None:
    with pytest.raises(eb.EdgebertError, match="timing_only=True.*--timing-only"):
        eb.emulate(early, entropies=[0.5] * LAYERS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = eb.emulate(early, entropies=[0.9] * 12, timing_only=True)
    assert result.exit_layer == LAYERS
    assert any(issubclass(w.category, eb.EdgebertWarning) and "12 entropies" in str(w.message) for w in caught)


def test_bench_without_a_dvfs_plan_says_so(early: eb.Program, tiny: tuple[Path, Path]) -> None:
    result = eb.bench(early, inputs=tiny[1], limit=3)
    assert list(result["modes"]) == ["no-exit", "early-exit"]
    assert "no DVFS instructions" in result["notes"][0]
    assert result["modes"]["early-exit"]["accuracy"] is not None


def test_notebook_example_end_to_end(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """examples/notebook.py: compile, emulate, calibrate, compile with DVFS, bench and plot, public API only."""
    spec = importlib.util.spec_from_file_location("notebook", ROOT / "examples" / "notebook.py")
    notebook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(notebook)
    source = (ROOT / "examples" / "notebook.py").read_text()
    assert "edgebert." not in source.replace("import edgebert as eb", "")  # nothing but the public API
    out = tmp_path / "nb"
    assert notebook.main(["--model", str(tiny[0]), "--sentences", str(tiny[1]), "--out", str(out), "--calibrate", "6",
                          "--bench", "6", "--format", "svg", "-q"]) == 0
    bench = json.loads((out / "bench.json").read_text())
    assert list(bench["modes"]) == ["no-exit", "early-exit", "ee+dvfs", "oracle"] and bench["sentences"] == 6
    assert bench["modes"]["ee+dvfs"]["within_target"] == 1.0
    for figure in ("one_sentence.svg", "bench.svg"):
        text = (out / figure).read_text()
        assert text.startswith("<?xml") and "<text" in text  # vector, text kept as text
    rows = (out / "bench.csv").read_text().splitlines()
    assert rows[0].startswith("sentence,mode,latency_s,energy_j") and len(rows) == 1 + 4 * 6
