"""Compressed weights: which constant matmul weights are stored AF8 and/or bitmask-sparse, and their tile encodings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgebert.isa import adaptivfloat
from edgebert.isa.bits import sparse_mask_bytes
from edgebert.isa.errors import CompileError

#: A weight is stored bitmask-sparse when its measured density (non-zero fraction) is at most this. Sparse tiles
#: are mask (k*n bits) + packed non-zeros: smaller than dense below density 31/32 (fp32) or 7/8 (AF8); 0.75 keeps a
#: clear saving and leaves unpruned weights (density ~1, a few AF8 flushes to 0) dense.
SPARSE_MAX_DENSITY = 0.75


@dataclass(frozen=True)
class WeightFormat:
    """How one constant weight is stored: AF8 codes with `af8_bias` (None: fp32) and/or bitmask-sparse tiles."""

    af8_bias: int | None = None
    sparse: bool = False

    @property
    def itemsize(self) -> int:
        return 1 if self.af8_bias is not None else 4


@dataclass(frozen=True)
class InPlaceFormat(WeightFormat):
    """A weight stored dense (fp32 or AF8 codes) as ONE row-major SRAM constant that the matmuls read in place
    (b_stride = its row length): a multi-task program's task weight, which the linker places in the SRAM task region
    (compiler/link.py). Never bitmask-sparse."""


@dataclass
class CompressionOptions:
    """What the compiler compresses: AF8 weights (per-tensor biases by weight content), sparse weights."""

    af8_weights: bool = False
    #: sha256 of a weight's float32 bytes (as the matmul uses it, [K, N]) -> the metadata's AF8 exponent bias
    weight_biases: dict[bytes, int] = field(default_factory=dict)
    sparse: bool = True
    sparse_max_density: float = SPARSE_MAX_DENSITY
    #: activation AF8 biases per quantization point (metadata `edgebert.quantization.activations.exp_bias`)
    activation_biases: dict[str, int] = field(default_factory=dict)
    #: weight key -> the activation quantization points at its matmul's input, one per use in layer order
    weight_points: dict[bytes, list[str]] = field(default_factory=dict)
    #: multi-task task weights (options.TaskWeights): weight key -> their slot's AF8 bias (None: fp32), stored dense
    task_formats: dict[bytes, int | None] = field(default_factory=dict)
    task_weights_in_place: bool = False  # task weights: one SRAM constant each, read in place (InPlaceFormat)
    _uses: dict[bytes, int] = field(default_factory=dict)
    _formats: dict[bytes, WeightFormat | None] = field(default_factory=dict)  # weight key -> weight_format
    _codes: dict[tuple[bytes, int], np.ndarray] = field(default_factory=dict)  # (key, bias) -> AF8 codes

    def reset(self) -> None:
        """Forget the per-weight use counts (before each lowering attempt)."""
        self._uses.clear()

    def activation_bias(self, w: np.ndarray, in_loop: bool) -> int | None:
        """AF8 bias of the activation entering the matmul with weight `w` (None: fp32 activation).

        The k-th lowering of a weight outside a layer loop is its k-th point; inside a loop body (one body for
        every layer of the group) all its points must share one bias (the `quant` exp_bias is an immediate)."""
        if not self.activation_biases:
            return None
        key = weight_key(w)
        points = [p for p in self.weight_points.get(key, []) if p in self.activation_biases]
        if not points:
            return None
        if in_loop:
            biases = {self.activation_biases[p] for p in points}
            if len(biases) > 1:
                raise CompileError(
                    f"activation AF8 biases differ across the layers of a loop ({', '.join(points)}: "
                    f"{sorted(biases)}); one loop body needs one bias per point (calibrate a shared bias)"
                )
            return biases.pop()
        k = self._uses.get(key, 0)
        self._uses[key] = k + 1
        return self.activation_biases[points[min(k, len(points) - 1)]]

    def attention_biases(self, in_loop: bool) -> tuple[int, int] | None:
        """AF8 biases (a, b) of the next attention matmul lowered (QK^T, then PV, layer after layer), or None when the
        model did not calibrate its attention (metadata points `layer{i}.attn_{q,k,probs,v}_in`).

        Inside a loop body (one body for every layer) each point's bias must be the same in every layer."""
        if not any(p.startswith("layer") and ".attn_" in p for p in self.activation_biases):
            return None
        k = self._uses.get(b"attention", 0)
        self._uses[b"attention"] = k + 1
        layer, second = divmod(k, 2)
        roles = ("probs", "v") if second else ("q", "k")
        out = []
        for role in roles:
            points = sorted((p for p in self.activation_biases if p.startswith("layer") and p.endswith(f".attn_{role}_in")),
                            key=lambda p: int(p.split(".")[0][5:]))
            if not points:
                raise CompileError(f"AF8 attention: the metadata has no activation bias for attn_{role}_in")
            if in_loop:
                biases = {self.activation_biases[p] for p in points}
                if len(biases) > 1:
                    raise CompileError(f"activation AF8 biases differ across the layers of a loop (attn_{role}_in: "
                                       f"{sorted(biases)}); one loop body needs one bias per point")
                out.append(biases.pop())
            else:
                out.append(self.activation_biases[points[min(layer, len(points) - 1)]])
        return out[0], out[1]

    def weight_format(self, w: np.ndarray) -> WeightFormat | None:
        """The storage of the constant matmul weight `w` [K, N], or None for plain dense fp32 (remembered by
        content: a shared weight is checked once per compile)."""
        key = weight_key(w) if w.ndim == 2 else None
        if key is not None and key in self._formats:
            return self._formats[key]
        fmt = self._weight_format(w)
        if key is not None:
            self._formats[key] = fmt
        return fmt

    def af8_codes(self, w: np.ndarray, bias: int) -> np.ndarray:
        """adaptivfloat.encode of the whole weight (remembered: its tiles are slices of it)."""
        key = (weight_key(w), bias)
        if key not in self._codes:
            self._codes[key] = adaptivfloat.encode(np.ascontiguousarray(w, np.float32), bias)
        return self._codes[key]

    def _weight_format(self, w: np.ndarray) -> WeightFormat | None:
        if self.task_formats:
            key = weight_key(w)
            if key in self.task_formats:
                bias = self.task_formats[key]
                if self.task_weights_in_place:
                    return InPlaceFormat(bias, False)
                return None if bias is None else WeightFormat(bias, False)
        w = np.ascontiguousarray(w, dtype=np.float32)
        if w.ndim != 2 or w.size == 0 or not np.all(np.isfinite(w)):
            return None
        bias = self._af8_bias(w) if self.af8_weights else None
        density = np.count_nonzero(w) / w.size
        sparse = self.sparse and density <= self.sparse_max_density
        if bias is None and not sparse:
            return None
        return WeightFormat(bias, sparse)

    def _af8_bias(self, w: np.ndarray) -> int:
        """The metadata's bias (by content), else adaptivfloat.choose_bias; the weight must round-trip exactly."""
        key = weight_key(w)
        candidates = [self.weight_biases[key]] if key in self.weight_biases else []
        candidates.append(adaptivfloat.choose_bias(w))
        for bias in candidates:
            if np.array_equal(adaptivfloat.quantize(w, bias), w):
                return bias
        raise CompileError(
            f"AF8 model: a {w.shape[0]}x{w.shape[1]} matmul weight is not exactly representable in AdaptivFloat-8 "
            f"with bias {candidates[0]} (export the fake-quantized values, or compile without AF8 metadata)"
        )


#: id(array) -> (the array, its content key) for read-only arrays (the lowering's constants: lower.core.Lowerer)
_KEYS: dict[int, tuple[np.ndarray, bytes]] = {}


def weight_key(w: np.ndarray) -> bytes:
    """Content key of a float32 weight matrix (shape included); remembered for read-only arrays."""
    hit = _KEYS.get(id(w))
    if hit is not None and hit[0] is w:
        return hit[1]
    a = np.ascontiguousarray(w, dtype=np.float32)
    key = hashlib.sha256(repr(a.shape).encode() + a.tobytes()).digest()
    if not w.flags.writeable:
        if len(_KEYS) > 256:
            _KEYS.clear()
        _KEYS[id(w)] = (w, key)
    return key


def options_from_model(model: Any, metadata: Any) -> CompressionOptions:
    """CompressionOptions of a loaded ONNX model: AF8 from `edgebert.quantization` (weight biases matched to the
    initializers they name, as stored and transposed), sparse storage always allowed (measured density)."""
    from onnx import numpy_helper

    quant = getattr(metadata, "quantization", None) or {}
    opts = CompressionOptions(af8_weights=str(quant.get("format", "none")) == "af8")
    weights = quant.get("weights") or {}
    inits = {t.name: t for t in model.graph.initializer}
    for entry in weights.values():
        if not isinstance(entry, dict) or entry.get("initializer") not in inits:
            continue
        arr = numpy_helper.to_array(inits[entry["initializer"]]).astype(np.float32)
        if arr.ndim == 2:
            for a in (arr, arr.T):
                opts.weight_biases[weight_key(a)] = int(entry["exp_bias"])
    acts = quant.get("activations") or {}
    if isinstance(acts, dict) and acts.get("enabled"):
        opts.activation_biases = {str(k): int(v) for k, v in (acts.get("exp_bias") or {}).items()}
        info = getattr(metadata, "model_info", None) or {}
        layers, groups = int(info.get("num_layers", 0) or 0), int(info.get("num_hidden_groups", 1) or 1)
        depth_shared = not any(str(n).startswith("adapters.") and str(n).split(".")[2] != "0" for n in weights)
        for name, entry in weights.items():
            points = activation_points(str(name), layers, groups, depth_shared)
            if points and isinstance(entry, dict) and entry.get("initializer") in inits:
                arr = numpy_helper.to_array(inits[entry["initializer"]]).astype(np.float32)
                if arr.ndim == 2:
                    for a in (arr, arr.T):
                        opts.weight_points.setdefault(weight_key(a), points)
    return opts


#: torch weight name suffix -> the activation point (frontend/models/compressed_albert.py) at that linear layer's input
_LAYER_POINTS = {
    "attention.query.weight": "qkv_in", "attention.key.weight": "qkv_in", "attention.value.weight": "qkv_in",
    "attention.dense.weight": "attention_dense_in", "ffn.weight": "ffn_in", "ffn_output.weight": "ffn_output_in",
}


def activation_points(name: str, layers: int, groups: int, depth_shared: bool = False) -> list[str]:
    """The activation quantization points (in layer order) at the input of the linear layer `name`.

    Adapter weights `adapters.{site}.{d}.{down|up}.weight` (frontend/models/adapters.py) feed the point of layer d+1,
    or of every layer when one adapter serves all depths (`depth_shared`)."""
    if name == "encoder.embedding_hidden_mapping_in.weight":
        return ["embedding_proj_in"]
    parts = name.split(".")
    if parts[0] == "exits" and len(parts) == 4:
        return [f"exit{int(parts[1]) + 1}.{parts[2]}_in"]
    if parts[0] == "adapters" and len(parts) == 5 and parts[3] in ("down", "up") and parts[4] == "weight":
        depths = range(layers) if depth_shared else [int(parts[2])]
        return [f"layer{i + 1}.adapter_{parts[1]}_{parts[3]}_in" for i in depths]
    if name.startswith("encoder.albert_layer_groups.") and layers:
        group = int(parts[2])
        suffix = ".".join(parts[5:])
        if suffix in _LAYER_POINTS:
            return [f"layer{i + 1}.{_LAYER_POINTS[suffix]}" for i in range(layers)
                    if int(i / (layers / max(groups, 1))) == group]
    return []


def encode_tile(tile: np.ndarray, fmt: WeightFormat, sparse: bool, codes: np.ndarray | None = None) -> bytes:
    """A [k, n] weight tile as stored: dense (fp32 or AF8 codes, row-major) or bitmask + packed non-zeros.
    `codes`: the tile's AF8 codes when already known (a slice of the whole weight's, encoded once)."""
    tile = np.ascontiguousarray(tile, dtype=np.float32)
    if fmt.af8_bias is not None:
        values = np.ascontiguousarray(codes) if codes is not None else adaptivfloat.encode(tile, fmt.af8_bias)
        nonzero = values != 0
    else:
        values = tile
        nonzero = tile != 0
    if not sparse:
        return values.tobytes()
    k, n = tile.shape
    bits = np.packbits(nonzero.reshape(-1), bitorder="little").tobytes()
    mask = bits + bytes(sparse_mask_bytes(k, n) - len(bits))
    return mask + values.reshape(-1)[nonzero.reshape(-1)].tobytes()


def decode_tile(raw: bytes, k: int, n: int, fmt: WeightFormat, sparse: bool) -> np.ndarray:
    """The stored values of an encoded [k, n] tile (AF8 codes as uint8, else float32): inverse of encode_tile."""
    dtype = np.uint8 if fmt.af8_bias is not None else np.float32
    if not sparse:
        return np.frombuffer(raw, dtype=dtype, count=k * n).reshape(k, n)
    nmask = sparse_mask_bytes(k, n)
    bits = np.unpackbits(np.frombuffer(raw[:nmask], np.uint8), count=k * n, bitorder="little").astype(bool)
    out = np.zeros(k * n, dtype=dtype)
    out[bits] = np.frombuffer(raw[nmask:], dtype=dtype, count=int(bits.sum()))
    return out.reshape(k, n)
