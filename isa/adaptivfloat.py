"""AdaptivFloat-8 (AdpfloatType<8,3> of the EdgeBERT artifact): the reference quantizer.

Format: 1 sign, 3 exponent, 4 mantissa bits; a per-tensor exponent bias ``b`` in 0..7; fixed
offset -10. value = (-1)^s * 2^(e + b - 10) * (1 + m/16); no denormals; ``e = 0, m = 0`` is zero
(codes 0x00 and 0x80). Quantizing rounds the mantissa to nearest, ties to even; magnitudes
below the smallest normal ``2^(b-10) * 17/16`` become 0 and magnitudes above the largest
``2^(b-3) * 31/16`` saturate. The emulator and the PyTorch fake-quant model both call this module.
"""

from __future__ import annotations

import numpy as np

EXP_BITS = 3
MANT_BITS = 4
OFFSET = -10
MAX_BIAS = (1 << EXP_BITS) - 1


def _check_bias(bias: int) -> None:
    if not 0 <= int(bias) <= MAX_BIAS:
        raise ValueError(f"AdaptivFloat exponent bias {bias} is outside 0..{MAX_BIAS}")


def exponent_range(bias: int) -> tuple[int, int]:
    """Smallest and largest unbiased exponent representable with `bias`."""
    _check_bias(bias)
    return bias + OFFSET, MAX_BIAS + bias + OFFSET


def min_normal(bias: int) -> float:
    """Smallest non-zero magnitude (e = 0, m = 1)."""
    return 2.0 ** exponent_range(bias)[0] * (1 + 1 / 16)


def max_normal(bias: int) -> float:
    """Largest magnitude (e = 7, m = 15)."""
    return 2.0 ** exponent_range(bias)[1] * (31 / 16)


def choose_bias(x: np.ndarray) -> int:
    """The per-tensor bias that puts the tensor's largest magnitude in the top binade (clamped)."""
    amax = float(np.max(np.abs(x))) if np.size(x) else 0.0
    if amax == 0.0 or not np.isfinite(amax):
        return MAX_BIAS if not np.isfinite(amax) and amax != 0.0 else 0
    top = int(np.floor(np.log2(amax)))
    return int(np.clip(top - (MAX_BIAS + OFFSET), 0, MAX_BIAS))


def _decode_table() -> np.ndarray:
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    e = (codes >> MANT_BITS) & MAX_BIAS
    m = codes & 0xF
    table = np.empty((MAX_BIAS + 1, 256), dtype=np.float32)
    for bias in range(MAX_BIAS + 1):
        vals = sign * np.ldexp(1 + m / 16, e + bias + OFFSET)
        vals[(e == 0) & (m == 0)] = 0.0
        table[bias] = vals.astype(np.float32)
    return table


DECODE_TABLE: np.ndarray = _decode_table()
DECODE_TABLE.flags.writeable = False


def decode(codes: np.ndarray, bias: int) -> np.ndarray:
    """AF8 codes (uint8) -> float32 values."""
    _check_bias(bias)
    return DECODE_TABLE[bias][np.asarray(codes, dtype=np.uint8)]


def encode(x: np.ndarray, bias: int) -> np.ndarray:
    """float values -> AF8 codes (uint8), rounding to nearest even, flushing and saturating."""
    emin, emax = exponent_range(bias)
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("cannot quantize NaN to AdaptivFloat")
    sign = np.signbit(x).astype(np.uint8) << 7
    mag = np.abs(x)
    frac, exp = np.frexp(mag)  # mag = frac * 2^exp, frac in [0.5, 1)
    e = exp.astype(np.int64) - 1  # mag = (2 * frac) * 2^e, 2 * frac in [1, 2)
    safe_e = np.clip(e, emin, emax)
    m = np.rint((np.ldexp(mag, -safe_e) - 1.0) * 16)  # round half to even
    carry = m >= 16
    e = np.where(carry, safe_e + 1, safe_e)
    m = np.where(carry, 0, m)
    over = (e > emax) | (mag > max_normal(bias)) | np.isinf(mag)
    e = np.where(over, emax, e)
    m = np.where(over, 15, m)
    under = mag < min_normal(bias)
    field_e = np.where(under, 0, e - emin).astype(np.uint8)
    field_m = np.where(under, 0, m).astype(np.uint8)
    code = field_e << MANT_BITS | field_m
    # keep the sign of zero only as 0x00: both zeros decode to 0.0 and quantize(-0.0) -> 0x00
    return np.where(code == 0, 0, sign | code).astype(np.uint8)


def quantize(x: np.ndarray, bias: int) -> np.ndarray:
    """Fake quantization: the float32 value of the nearest AF8 number (same shape as x)."""
    return decode(encode(x, bias), bias)
