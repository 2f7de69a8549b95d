"""Regenerate the small .npy inputs of the bundled assembly examples (deterministic): `python make_data.py`."""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent / "data"


def main() -> None:
    rng = np.random.default_rng(2021)
    HERE.mkdir(exist_ok=True)
    # Multiples of 1/4 in [-1, 1]: every product and partial sum of the 64x64 matmul is exact in fp32.
    np.save(HERE / "matmul_a.npy", (rng.integers(-4, 5, (64, 64)) / 4).astype(np.float32))
    np.save(HERE / "matmul_b.npy", (rng.integers(-4, 5, (64, 64)) / 4).astype(np.float32))
    np.save(HERE / "softmax_x.npy", rng.normal(0, 2, (16, 64)).astype(np.float32))
    np.save(HERE / "early_exit_w.npy", (rng.normal(0, 1, (16, 16)) / 2).astype(np.float32))
    np.save(HERE / "early_exit_wc.npy", rng.normal(0, 1, (16, 4)).astype(np.float32))


if __name__ == "__main__":
    main()
