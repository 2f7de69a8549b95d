"""Bit-level facts shared by the compiler, the assembler and the emulator (one definition each)."""

from __future__ import annotations

import struct


def f32_bits(value: float) -> int:
    """IEEE-754 binary32 bit pattern of `value` rounded to float32; OverflowError if it does not fit."""
    return struct.unpack("<I", struct.pack("<f", float(value)))[0]


def bits_f32(bits: int) -> float:
    """The float32 value (as a Python float) of a 32-bit pattern."""
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def sparse_mask_bytes(k: int, n: int) -> int:
    """Bytes of the bitmask of a k x n sparse matmul operand: one bit per element, padded to a multiple of 4."""
    return -(-(k * n) // 32) * 4
