"""The Relax-level part of the compiler pipeline: what the frontend hands to the backend."""

from __future__ import annotations

from typing import Any

import tvm

from edgebert.compiler.relax_passes.cleanup import cleanup_passes
from edgebert.compiler.relax_passes.fusion import CanonicalizeCompositeArgs, fusion_pass
from edgebert.compiler.relax_passes.idioms import SimplifyIdentityIdioms
from edgebert.compiler.relax_passes.layer_loop import OutlineLayerLoops
from edgebert.compiler.relax_passes.mask import SimplifyAttentionMask


def relax_passes(params: dict[str, Any] | None = None, layer_loops: bool = True) -> list[tvm.transform.Pass]:
    """cleanup -> attention-mask canonicalisation -> composite fusion -> canonical composite arguments
    -> layer loop outlining."""
    passes = cleanup_passes(params)
    passes += [SimplifyAttentionMask(), fusion_pass(), CanonicalizeCompositeArgs(), SimplifyIdentityIdioms()]
    if layer_loops:
        passes.append(OutlineLayerLoops())
    return passes


def default_passes() -> list[tvm.transform.Pass]:
    """`relax_passes()` with defaults (the name compiler/pipeline.py looks up)."""
    return relax_passes()
