"""AdaptivFloat-8 (isa/adaptivfloat) against values worked out by hand from HARDWARE.md's definition.

With exponent bias b = 3 the unbiased exponents are 3 - 10 = -7 .. 7 + 3 - 10 = 0, so:
smallest normal 2^-7 * 17/16 = 0.00830078125 (code 0x01), largest 2^0 * 31/16 = 1.9375 (code 0x7F),
1.0 = 2^0 * (1 + 0/16) -> exponent field 0 - (-7) = 7, mantissa 0 -> code 0x70.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.isa import adaptivfloat

CASES_BIAS_3 = [
    (0.0, 0x00, 0.0),  # zero
    (-0.0, 0x00, 0.0),  # negative zero is stored as 0x00
    (2**-7 * 17 / 16, 0x01, 0.00830078125),  # smallest normal
    (-(2**-7) * 17 / 16, 0x81, -0.00830078125),
    (2**-7 * 1.06, 0x00, 0.0),  # below the smallest normal: flushed to zero (no denormals)
    (2**-7, 0x00, 0.0),  # e = 0, m = 0 would be 2^-7 but that code means zero
    (1.0, 0x70, 1.0),
    (1.9375, 0x7F, 1.9375),  # largest
    (100.0, 0x7F, 1.9375),  # saturates
    (-1e30, 0xFF, -1.9375),
    (np.inf, 0x7F, 1.9375),
    (1 + 1 / 32, 0x70, 1.0),  # tie between m = 0 and m = 1: to even (0)
    (1 + 3 / 32, 0x72, 1.125),  # tie between m = 1 and m = 2: to even (2)
    (1 + 1 / 32 + 1e-6, 0x71, 1.0625),  # just above the tie rounds up
    (0.5 * (1 + 31 / 32), 0x70, 1.0),  # tie between 0.5 * 31/16 (m = 15) and 1.0 (carry): to even -> 1.0
    (0.75, 0x68, 0.75),  # 2^-1 * (1 + 8/16): exponent field 6, mantissa 8
]


@pytest.mark.parametrize(("x", "code", "value"), CASES_BIAS_3)
def test_hand_worked_codes_bias_3(x: float, code: int, value: float) -> None:
    assert int(adaptivfloat.encode(np.array([x]), 3)[0]) == code
    assert float(adaptivfloat.decode(np.array([code], np.uint8), 3)[0]) == value
    assert float(adaptivfloat.quantize(np.array([x]), 3)[0]) == value


def test_range_moves_with_the_bias() -> None:
    assert adaptivfloat.min_normal(0) == 2**-10 * 17 / 16
    assert adaptivfloat.max_normal(7) == 2**4 * 31 / 16  # 31.0
    assert float(adaptivfloat.quantize(np.array([31.0]), 7)[0]) == 31.0
    assert float(adaptivfloat.quantize(np.array([31.0]), 6)[0]) == 15.5  # saturates one binade lower


def test_both_zero_codes_decode_to_zero_and_all_codes_roundtrip() -> None:
    for bias in range(8):
        values = adaptivfloat.decode(np.arange(256, dtype=np.uint8), bias)
        assert values[0x00] == 0.0 and values[0x80] == 0.0
        codes = adaptivfloat.encode(values, bias)
        np.testing.assert_array_equal(adaptivfloat.decode(codes, bias), values)


def test_choose_bias_fits_the_largest_magnitude() -> None:
    assert adaptivfloat.choose_bias(np.array([0.3, -1.5])) == 3  # top binade 2^0 -> bias 3
    assert adaptivfloat.choose_bias(np.array([20.0])) == 7  # 2^4 -> bias 7
    assert adaptivfloat.choose_bias(np.array([1e-5])) == 0  # clamped
