"""The backend's table of plain Relax ops, `{relax op name: handler}`: plain_ops.PLAIN_OPS, then the math and data
movement the encoder zoo adds (math_ops.MATH_OPS, view_ops.VIEW_OPS; an entry there replaces plain_ops' for the same
op: astype and power delegate to it for the cases it handles). The lowering (lower/program.py) and the up-front
support check (compiler/support.py) both read this one table."""

from __future__ import annotations

from edgebert.compiler.lower.math_ops import MATH_OPS
from edgebert.compiler.lower.plain_ops import FOLDABLE, PLAIN_OPS
from edgebert.compiler.lower.view_ops import VIEW_OPS

LOWERED_OPS = {**PLAIN_OPS, **MATH_OPS, **VIEW_OPS}

__all__ = ["FOLDABLE", "LOWERED_OPS"]
