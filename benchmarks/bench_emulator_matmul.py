"""Emulator speed: a large tiled matmul run through edgebert.emulator vs numpy doing the same tile matmuls.

    python benchmarks/bench_emulator_matmul.py [--m 512 --k 768 --n 3072 --tk 256 --repeat 7] [--hw NAME|FILE]

Prints both wall times (best of --repeat, measured in the same process, interleaved) and their ratio
(the target is <= 1.5), plus the emulated cycles against the roofline lower bound. BLAS runs on one
thread (OPENBLAS_NUM_THREADS=1 unless set) so that both sides measure the same kernel on a shared machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edgebert.emulator import run  # noqa: E402
from edgebert.isa.encoding import Inst, make  # noqa: E402
from edgebert.isa.hardware import HardwareConfig, load_config  # noqa: E402
from edgebert.isa.program import Program  # noqa: E402
from edgebert.isa.table import SPACES, UNITS  # noqa: E402

LD, PU, ST = (1 << UNITS.index(u) for u in ("ld", "pu", "st"))
DRAM = SPACES.index("dram")


def choose_tiles(m: int, k: int, n: int, tk: int, hw: HardwareConfig) -> tuple[int, int, int]:
    """A-stationary tiling: all of A in SRAM, double-buffered tk x tn tiles of B, one m x tn tile of C.

    tn is the largest multiple of the vector size that divides n and fits the SRAM (and the PU's max_n).
    """
    free = hw.memory.sram.size_bytes - m * k * 4
    limit = min(free // (4 * (2 * tk + m)), hw.pu.max_n, n)
    step = hw.pu.vector_size
    tn = next((t for t in range(limit // step * step, 0, -step) if n % t == 0), 0)
    if tn <= 0 or m > hw.pu.max_m or tk > hw.pu.max_k or k % tk:
        raise SystemExit(f"no A-stationary tiling of {m}x{k} @ {k}x{n} with tk={tk} fits {hw.name} "
                         f"({hw.memory.sram.size_bytes:,} B of SRAM; tn must divide n and be a multiple of {step})")
    return m, tk, tn


def tiled_matmul_program(m: int, k: int, n: int, tk: int, tn: int, hw: HardwareConfig) -> Program:
    """C = A @ B with A, B, C in DRAM: A loaded once, B tiles double-buffered, guarded by dependency tokens."""
    a_dram, b_dram, c_dram = 0, m * k * 4, m * k * 4 + k * n * 4
    a_buf = 0
    b_buf = [m * k * 4 + i * tk * tn * 4 for i in range(2)]
    c_buf = b_buf[1] + tk * tn * 4
    assert c_buf + m * tn * 4 <= hw.memory.sram.size_bytes, "tiles do not fit in SRAM"
    # The A load signals nobody: the first B load after it (same unit, in order) carries the token.
    code: list[Inst] = [make("ld", dst=a_buf, src=a_dram, src_space=DRAM, rows=m, cols=k)]
    step = 0
    for j in range(0, n, tn):
        for kk in range(0, k, tk):
            s = step % 2
            first, last = kk == 0, kk + tk >= k
            # the load into buffer s waits until the matmul that read it two steps ago has finished.
            code.append(make("ld", dst=b_buf[s], src=b_dram + (kk * n + j) * 4, src_space=DRAM, src_stride=n,
                             rows=tk, cols=tn, wait=PU if step >= 2 else 0, signal=PU))
            # the first matmul into C waits until the previous C tile has been stored.
            wait = LD | (ST if first and j > 0 else 0)
            code.append(make("matmul", dst=c_buf, a=a_buf + kk * 4, b=b_buf[s], m=m, k=tk, n=tn, a_stride=k,
                             acc=0 if first else 1, wait=wait, signal=LD | (ST if last else 0)))
            step += 1
        code.append(make("st", dst=c_dram + j * 4, dst_space=DRAM, src=c_buf, dst_stride=n, rows=m, cols=tn,
                         wait=PU, signal=PU))
    code.append(make("halt"))
    meta = {
        "inputs": [
            {"name": "a", "space": "dram", "address": a_dram, "shape": [m, k], "dtype": "float32"},
            {"name": "b", "space": "dram", "address": b_dram, "shape": [k, n], "dtype": "float32"},
        ],
        "outputs": [{"name": "c", "space": "dram", "address": c_dram, "shape": [m, n], "dtype": "float32"}],
    }
    return Program(code, metadata=meta, hw_fingerprint=hw.fingerprint)


def numpy_tiles(a: np.ndarray, b: np.ndarray, tk: int, tn: int) -> np.ndarray:
    """The same tile matmuls (m x tk @ tk x tn, accumulated over k), straight numpy."""
    k, n = b.shape
    c = np.empty((a.shape[0], n), np.float32)
    for j in range(0, n, tn):
        for kk in range(0, k, tk):
            p = a[:, kk : kk + tk] @ b[kk : kk + tk, j : j + tn]
            if kk == 0:
                c[:, j : j + tn] = p
            else:
                c[:, j : j + tn] += p
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=512, help="rows of A and C (default 512)")
    ap.add_argument("--k", type=int, default=768, help="columns of A, rows of B (default 768)")
    ap.add_argument("--n", type=int, default=3072, help="columns of B and C (default 3072)")
    ap.add_argument("--tk", type=int, default=256, help="reduction tile (tn then fills the SRAM; default 256)")
    ap.add_argument("--hw", metavar="NAME|FILE", default="ideal-256mac",
                    help="hardware config (default ideal-256mac: its 4 MiB SRAM holds the 512x256x512 tiles; this measures "
                         "the emulator's own overhead, not the machine)")
    ap.add_argument("--repeat", type=int, default=7, help="runs of each side; the best counts (default 7)")
    args = ap.parse_args()
    hw = load_config(args.hw)
    tm, tk, tn = choose_tiles(args.m, args.k, args.n, args.tk, hw)
    prog = tiled_matmul_program(args.m, args.k, args.n, tk, tn, hw)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.m, args.k)).astype(np.float32)
    b = rng.standard_normal((args.k, args.n)).astype(np.float32)
    emu_times, np_times = [], []
    result = None
    for _ in range(args.repeat):
        del result  # free the previous run's memories outside the timed region
        t0 = time.perf_counter()
        ref = numpy_tiles(a, b, tk, tn)
        np_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = run(prog, {"a": a, "b": b}, hw)
        emu_times.append(time.perf_counter() - t0)
    np.testing.assert_allclose(result.outputs["c"], ref, rtol=1e-4, atol=1e-3)
    r = result.report
    macs = args.m * args.k * args.n
    dram_bytes = r["traffic_bytes"]["dram"]["read"] + r["traffic_bytes"]["dram"]["write"]
    roofline = max(macs / hw.pu.macs_per_cycle, dram_bytes / hw.memory.dram.bandwidth)
    emu, ref_t = min(emu_times), min(np_times)
    print(f"tiled matmul {args.m}x{args.k} @ {args.k}x{args.n} on {hw.name}, tiles {tm}x{tk}x{tn}: "
          f"{len(prog.code)} instructions; load average {os.getloadavg()[0]:.1f}")
    print(f"numpy tile matmuls : {ref_t * 1e3:8.1f} ms (best of {args.repeat})")
    print(f"emulator run       : {emu * 1e3:8.1f} ms (best of {args.repeat})")
    print(f"ratio emulator / numpy = {emu / ref_t:.2f}  (target <= 1.5)")
    print(f"emulated: {r['cycles']:,} cycles ({r['seconds'] * 1e3:.3f} ms), roofline bound {roofline:,.0f} cycles "
          f"({r['cycles'] / roofline:.2f}x), energy {r['energy_j'] * 1e6:.1f} uJ, races {r['race_count']}")


if __name__ == "__main__":
    main()
