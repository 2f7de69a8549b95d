"""The bundled assembly examples (examples/asm) assemble, run race-free and agree with numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgebert.emulator import run
from edgebert.isa.assembler import assemble_file
from edgebert.isa.hardware import default_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "asm"
DATA = EXAMPLES / "data"


def _run(name: str, **kw):
    result = run(assemble_file(EXAMPLES / name), {}, check_uninitialized=True, **kw)
    assert result.report["race_count"] == 0, result.report["races"][:1]
    assert result.report["halted"]
    return result


def test_tiled_matmul_is_exact() -> None:
    c = _run("tiled_matmul.s").outputs["C"]
    a, b = np.load(DATA / "matmul_a.npy"), np.load(DATA / "matmul_b.npy")
    np.testing.assert_array_equal(c, a @ b)  # multiples of 1/4: exact in fp32 in any order


def test_softmax_layernorm() -> None:
    out = _run("softmax_layernorm.s").outputs
    x = np.load(DATA / "softmax_x.npy").astype(np.float64) * 0.125
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gamma, beta = np.tile([1.0, 0.5, 2.0, 1.5], 16), np.tile([0.0, 0.25, -0.25, 0.5], 16)
    p32 = p.astype(np.float32).astype(np.float64)
    y = (p32 - p32.mean(1, keepdims=True)) / np.sqrt(p32.var(1, keepdims=True) + np.float32(1e-5)) * gamma + beta
    np.testing.assert_allclose(out["P"], p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["Y"], y, rtol=1e-5, atol=1e-5)


def _early_exit_reference(n_layers: int = 6, threshold: float = 0.05) -> tuple[list[float], list[np.ndarray]]:
    """Entropy and logits after every layer of examples/asm/early_exit.s, in numpy."""
    w, wc = np.load(DATA / "early_exit_w.npy"), np.load(DATA / "early_exit_wc.npy")
    h = np.linspace(-1, 1, 16, dtype=np.float32)[None, :]
    entropies, logits = [], []
    for _ in range(n_layers):
        h = np.tanh(h @ w)
        z = (h @ wc).astype(np.float64)[0]
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        entropies.append(float(-(p * np.log(p)).sum()))
        logits.append((h @ wc)[0])
    return entropies, logits


def test_early_exit_with_computed_entropies() -> None:
    entropies, logits = _early_exit_reference()
    expected = next((i + 1 for i, h in enumerate(entropies) if h < 0.05), 6)
    result = _run("early_exit.s")
    assert result.exit_layer == expected
    np.testing.assert_allclose(result.outputs["logits"][0], logits[expected - 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("entropies", "exit_layer"), [([0.2, 0.5, 0.04, 0.9, 0.9, 0.9], 3), ([0.9] * 6, 6)])
def test_early_exit_with_injected_entropies_and_dvfs(entropies: list[float], exit_layer: int) -> None:
    hw = default_config()
    result = _run("early_exit.s", entropy_values=entropies)
    report = result.report
    assert result.exit_layer == report["exit_layer"] == exit_layer
    assert report["entropy_injected"] == exit_layer
    # After layer 1 the program bins its entropy (floor(H * 8)) and looks up the operating point:
    # PREDICT = [2, 3, 4, 5, 6, 6, 6, 6]; the run starts at the initial point 6.
    predicted = [2, 3, 4, 5, 6, 6, 6, 6][min(int(np.float32(entropies[0]) * np.float32(8.0)), 7)]
    points = [seg["point"] for seg in report["dvfs"]]
    assert points == ([6] if predicted == 6 else [6, predicted])
    nominal = hw.dvfs.nominal_point.volts
    for seg in report["dvfs"]:
        v2 = (seg["volts"] / nominal) ** 2
        acts, energy = seg["actions"], seg["energy_breakdown_j"]
        assert energy["mac_f32"] == pytest.approx(acts["mac_f32"] * hw.energy.mac_f32_pj * 1e-12 * v2, rel=1e-12)
        assert energy["sfu"] == pytest.approx(acts["sfu_element_passes"] * hw.energy.sfu_op_pj * 1e-12 * v2)
        assert energy["ctl"] == pytest.approx(acts["ctl_ops"] * hw.energy.ctl_op_pj * 1e-12 * v2, rel=1e-12)
        sram = hw.memory.sram
        expected_sram = acts["read_bytes"]["sram"] * sram.read_pj_per_byte + acts["write_bytes"]["sram"] * sram.write_pj_per_byte
        assert energy["sram"] == pytest.approx(expected_sram * 1e-12 * v2, rel=1e-12)
        assert energy["leakage"] == pytest.approx(hw.energy.leakage_mw * 1e-3 * seg["volts"] / nominal * seg["seconds"])
        assert seg["seconds"] == pytest.approx(seg["cycles"] / (seg["mhz"] * 1e6) + seg["switch_s"])
    if len(points) == 2:
        slow = report["dvfs"][1]
        assert slow["switch_s"] == pytest.approx(hw.dvfs.switch_ns * 1e-9)
        assert slow["energy_breakdown_j"]["dvfs_switch"] == pytest.approx(hw.dvfs.switch_nj * 1e-9)
        assert report["energy_by_point_j"][str(predicted)] == pytest.approx(slow["energy_j"])
