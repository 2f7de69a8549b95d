"""Instruction emitters: turn ops on strided views into tile instructions (SFU, DMA, row operations)."""

from __future__ import annotations

from edgebert.compiler.tile_ir import Ref, TileInst, TileProgram
from edgebert.compiler.tiling import Tile, plan_tiles, row_tiles
from edgebert.compiler.views import View
from edgebert.isa.bits import f32_bits
from edgebert.isa.errors import CompileError
from edgebert.isa.table import BROADCASTS, DTYPES


def _span(tile: Tile, i: int, mode: str = "none") -> int:
    """Elements from the first to one past the last element operand i touches in `tile`."""
    if mode == "row":
        return tile.cols
    if mode == "col":
        return tile.rows
    if mode == "scalar":
        return 1
    stride = tile.row_strides[i] or tile.cols
    return (tile.rows - 1) * stride + tile.cols


def add_operand(inst: TileInst, name: str, view: View, off: int, span: int, write: bool) -> None:
    inst.addrs[name] = (view.buffer, off * view.itemsize)
    inst.refs.append(Ref(view.buffer, off * view.itemsize, span * view.itemsize, write))


def emit_binary(prog: TileProgram, mnemonic: str, dst: View, a: View, b: View, **fields: int) -> None:
    """dst = a (op) b element-wise; a and b already broadcast to dst's shape (stride 0 where broadcast); `fields`:
    the instruction's other fields (vcmp's `mode`)."""
    for t in plan_tiles([dst, a, b], b_last=True):
        inst = TileInst(
            mnemonic,
            {
                "rows": t.rows,
                "cols": t.cols,
                "dst_stride": t.row_strides[0],
                "a_stride": t.row_strides[1],
                "b_stride": t.row_strides[2] if t.bcast == "none" else 0,
                "bcast": BROADCASTS.index(t.bcast),
                **fields,
            },
        )
        add_operand(inst, "a", a, t.offsets[1], _span(t, 1), False)
        add_operand(inst, "b", b, t.offsets[2], _span(t, 2, t.bcast), False)
        add_operand(inst, "dst", dst, t.offsets[0], _span(t, 0), True)
        prog.emit(inst)


def _emit_src_dst(prog: TileProgram, mnemonic: str, tiles: list[Tile], dst: View, src: View,
                  rows_of: dict[str, View] | None = None, **fields: int) -> None:
    """One `mnemonic dst, src` instruction per tile (plus per-op row operands of `cols` elements)."""
    for t in tiles:
        inst = TileInst(
            mnemonic,
            {"rows": t.rows, "cols": t.cols, "dst_stride": t.row_strides[0], "src_stride": t.row_strides[1], **fields},
        )
        add_operand(inst, "src", src, t.offsets[1], _span(t, 1), False)
        for name, row in (rows_of or {}).items():
            add_operand(inst, name, row, row.offset, t.cols, False)
        add_operand(inst, "dst", dst, t.offsets[0], _span(t, 0), True)
        prog.emit(inst)


def emit_unary(prog: TileProgram, mnemonic: str, dst: View, src: View, **fields: int) -> None:
    """dst = op(src) element-wise (also vmov copies, itof, and vaddi/vmuli with an `imm` field)."""
    _emit_src_dst(prog, mnemonic, plan_tiles([dst, src]), dst, src, **fields)


def emit_immediate(prog: TileProgram, mnemonic: str, dst: View, src: View, imm: float) -> None:
    """dst = src + imm (vaddi) or src * imm (vmuli)."""
    emit_unary(prog, mnemonic, dst, src, imm=f32_bits(imm))


def emit_dma(prog: TileProgram, mnemonic: str, dst: View, src: View) -> None:
    """`ld` (any memory -> SRAM) or `st` (SRAM -> any memory) of a strided view; dtype from the views."""
    if dst.dtype != src.dtype:
        raise CompileError(f"internal: DMA between {src.dtype} and {dst.dtype}")
    _emit_src_dst(prog, mnemonic, plan_tiles([dst, src]), dst, src, dtype=DTYPES.index(dst.dtype))


def emit_row_op(
    prog: TileProgram, mnemonic: str, dst: View, src: View, rows_of: dict[str, View] | None = None, **fields: int
) -> bool:
    """A row-wise SFU op (softmax, layernorm) over the last axis; `rows_of` are per-op row operands
    (gamma, beta, mask) of `cols` elements. Returns False when the last axis is not contiguous."""
    tiles = row_tiles([dst, src])
    if not tiles:
        return False
    _emit_src_dst(prog, mnemonic, tiles, dst, src, rows_of, **fields)
    return True


def emit_gather(prog: TileProgram, dst: View, table: View, idx: View) -> None:
    """dst[r, :] = table[idx[r], :] for a dense 2-D table view and a contiguous vector of int32 indices."""
    rows, cols = dst.shape
    inst = TileInst(
        "gather",
        {
            "rows": rows,
            "cols": cols,
            "table_stride": table.strides[0] if table.shape[0] > 1 else 0,
            "dtype": DTYPES.index(table.dtype),
        },
    )
    add_operand(inst, "idx", idx, idx.offset, rows, False)
    tspan = (table.shape[0] - 1) * table.strides[0] + cols
    add_operand(inst, "table", table, table.offset, tspan, False)
    add_operand(inst, "dst", dst, dst.offset, (rows - 1) * (dst.strides[0] or cols) + cols, True)
    if dst.strides[1] != 1 and cols > 1 or dst.strides[0] != cols and rows > 1:
        raise CompileError("internal: gather destination must be dense")
    prog.emit(inst)
