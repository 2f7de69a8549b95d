"""edgebert.compiler.relax_passes: the Relax-level passes, and the contract between them and the backend.

  cleanup.py     TVM's cleanup passes (BindParams, CanonicalizeBindings, DCE) + ConstantOperandLast
  fold.py        constant folding in numpy (FoldConstantsNumpy), TVM's FoldConstant only if needed
  canonicalize.py  CanonicalizeDecomposed: exporter decompositions -> their op (exact GELU, LayerNorm below opset 17)
  mask.py        SimplifyAttentionMask: the exporters' mask plumbing -> one verified additive-mask row
  fusion.py      `relax.dpl` patterns of the edgebert.* composites, FuseOpsByPattern, CanonicalizeCompositeArgs,
                 `composite_attrs`
  idioms.py      SimplifyIdentityIdioms: exporter idioms that are the identity on the accelerator
  int_arith.py   IntegerArithmeticInFloat: integer arithmetic of bounded range (position ids) in float32
  layer_loop.py  OutlineLayerLoops and `find_layer_loops` (`LayerLoop`)
  exprs.py       queries on Relax expressions (`vars_in`)
  runner.py      `run_passes`: one pass at a time, timed, optionally dumped

The pass list is `compiler/pipeline.relax_passes()` (the `relax` stage):
    BindParams? -> edgebert.FoldConstantsNumpy -> edgebert.FoldRemainingConstants (TVM FoldConstant, if needed)
    -> CanonicalizeBindings -> [EliminateCommonSubexpr, opt-in] -> DeadCodeElimination
    -> edgebert.ConstantOperandLast -> edgebert.CanonicalizeDecomposed -> edgebert.SimplifyAttentionMask -> FuseOpsByPattern(edgebert.*)
    -> edgebert.CanonicalizeCompositeArgs -> edgebert.SimplifyIdentityIdioms -> edgebert.IntegerArithmeticInFloat
    -> edgebert.OutlineLayerLoops

The IR contract: what the backend (compiler/lower) receives
------------------------------------------------------------
This is the one statement of it (docs/frontend.md and docs/compiler.md point here).
* `main(input_ids: int64[1,S], attention_mask: int64[1,S] [, token_type_ids: int64[1,S]])` -> one tensor or
  a tuple, in ONNX output order; attr `num_input`. Its body is ONE DataflowBlock, bindings in a valid
  topological order; every shape is static. Weights are `tvm.ir.Constant`s (`.value.numpy()`), shared
  weights are the same constant object wherever used.
* Composite functions: private Relax functions with attrs {"Composite": "edgebert.<kind>", "Primitive": 1},
  named `edgebert_<kind>`, `edgebert_<kind>1`, ... (one per distinct shape); called directly from main or
  from a layer function as `cls.edgebert_dense1(x, W, b)`. Parameters in this order (fixed by
  CanonicalizeCompositeArgs); the body is the reference semantics in plain Relax ops, which the backend never
  inlines: it lowers each composite as a unit (`lower/composites.COMPOSITES`, one handler per name below), with
  the static facts `composite_attrs(func)` gives (layer_norm: epsilon, axes, scale, center; attention: num_heads,
  head_dim):
    edgebert.dense       (x f32[..., K], w const f32[K, N], b const f32[N]) -> x @ w + b
    edgebert.pooler      (x f32[1, K], w const f32[K, N], b const f32[N])  -> tanh(x @ w + b)
    edgebert.layer_norm  (x f32[..., C], gamma const f32[C], beta const f32[C]) -> layer norm over the last
                         axis; epsilon 1e-12 for ALBERT
    edgebert.gelu_tanh   (x, c3, c_cube, c_sqrt, c_half, c_one: scalar consts, checked = 3, 0.044715,
                         sqrt(2/pi), 0.5, 1 to 1e-5) -> 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    edgebert.attention   (q, k, v f32[1, S, H*D], mask f32 additive, broadcastable to [1, H, S, S]
                         (ALBERT: [1, 1, 1, S]), scale scalar const) -> f32[1, S, H*D]; head h uses
                         columns h*D:(h+1)*D of q, k, v and of the output:
                         out_h = softmax(q_h @ k_h^T * scale + mask, axis=-1) @ v_h
    edgebert.attention_span (as attention, + span_mask const f32[H, S, S] [+ eps scalar const when the sum has
                         the exporter's `+ 1e-30`]) -> the same with the span softmax:
                         p = M exp(x - max) / sum(M exp(x - max)), the compressed model's adaptive span
    edgebert.attention_core (q f32[1,H,S,D], k_t f32[1,H,D,S], v f32[1,H,S,D], mask, scale)
                         -> softmax(q @ k_t * scale + mask) @ v, f32[1,H,S,D] (only if the layout differs)
    edgebert.masked_softmax (x f32[..., S, S], span_mask const [+ eps]) -> the span softmax alone (outside an
                         attention)
    edgebert.embedding   (ids int64[1, S], table const f32[V, E] [, zero=0, size=V scalar consts])
                         -> table[ids] f32[1, S, E] (the 4-argument form wraps negative ids by +V, as
                         ONNX Gather does; token ids are never negative in practice, and `gather` traps on one)
    edgebert.mask_bias   (mask int64[1, S], neg const f32 scalar (finfo(f32).min), fzero const f32 = 0)
                         -> f32[1, 1, 1, S] = where(mask != 0, 0, neg) (body: astype(reshape(mask), bool)):
                         the additive attention-mask ROW, added (broadcast) to every score row of every head
* Layer loops: private functions `edgebert_layer_<g>` (g = 0, 1, ...: one per ALBERT layer group), attrs
  `edgebert.num_carried`, `edgebert.num_outputs`, `edgebert.count`. Parameters: the carried state first
  (ALBERT: the hidden state f32[1,S,H]), then loop-invariant inputs (ALBERT: the additive mask). They return
  one tensor (or a tuple of `num_outputs`). Main calls each `count` times in consecutive bindings, call i+1
  reading call i's result(s); weights are constants inside the body (identical for every call), except the
  constants that differ per layer (BERT's unshared layers): those are the function's last `edgebert.num_weights`
  parameters, and each call passes its layer's constants there.
  `find_layer_loops(mod)` lists them as `LayerLoop(func_name, count, first_binding_index, binding_indices,
  num_carried, num_outputs, num_weights)`: the pipeline's `layer-loops` stage calls it once and the lowering uses that list
  (a single-output loop becomes one counted loop body; the exit heads join it when they can).
* Plain Relax ops that remain (ALBERT): add (residuals; embedding + folded position/type constant rows
  f32[1, S, E]) and the CLS row `take(x, R.const(0), axis=1)` before the pooler. Nothing else, for both
  exporters (if SimplifyAttentionMask cannot verify a mask chain, that chain stays as plain ops). Any other plain
  op is lowered by `lower/plain_ops.PLAIN_OPS` or rejected naming the op and binding.
"""

from edgebert.compiler.relax_passes.canonicalize import CanonicalizeDecomposed
from edgebert.compiler.relax_passes.cleanup import ConstantOperandLast, cleanup_passes
from edgebert.compiler.relax_passes.fold import FoldConstantsNumpy, FoldRemainingConstants
from edgebert.compiler.relax_passes.fusion import (
    COMPOSITES,
    CanonicalizeCompositeArgs,
    composite_attrs,
    composite_specs,
    fusion_pass,
)
from edgebert.compiler.relax_passes.idioms import SimplifyIdentityIdioms
from edgebert.compiler.relax_passes.int_arith import IntegerArithmeticInFloat
from edgebert.compiler.relax_passes.layer_loop import LayerLoop, OutlineLayerLoops, find_layer_loops
from edgebert.compiler.relax_passes.mask import SimplifyAttentionMask
from edgebert.compiler.relax_passes.runner import pass_name, run_passes

__all__ = [
    "COMPOSITES", "CanonicalizeCompositeArgs", "CanonicalizeDecomposed", "ConstantOperandLast",
    "IntegerArithmeticInFloat", "FoldConstantsNumpy", "FoldRemainingConstants",
    "LayerLoop", "OutlineLayerLoops",
    "cleanup_passes", "composite_attrs", "composite_specs", "find_layer_loops", "fusion_pass", "pass_name",
    "SimplifyAttentionMask", "SimplifyIdentityIdioms", "run_passes",
]
