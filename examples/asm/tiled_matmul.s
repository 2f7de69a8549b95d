# Tiled fp32 matmul C = A @ B with A, B 64x64 in eNVM and C written to DRAM.
#
# B is loaded once into SRAM; A and C are processed in 4 row blocks of 16 rows, and each block's
# product is accumulated over 4 reduction tiles of 16 (matmul acc=1 after the first).
# Dependency tokens (wait = pop from that unit's queue, signal = push to that unit's queue):
#   ld A_i   --signal=pu-->  first matmul of block i      (A_i is in SRAM; ld is in order, so B too)
#   last matmul of block i --signal=st--> st C_i          (C_i is complete)
#   last matmul of block i --signal=ld--> ld A_{i+1}      (the A buffer may be overwritten)
#   st C_i   --signal=pu-->  first matmul of block i+1    (the C buffer may be overwritten)
.hwdefault
.meta outputs, [{"name": "C", "space": "dram", "address": 0, "shape": [64, 64], "dtype": "float32"}]

.equ ROW, 256              # bytes per 64-element fp32 row
.equ BLOCK, 4096           # bytes per 16-row block
.equ B_S, 0x0000           # SRAM: B, 64 x 64
.equ A_S, 0x4000           # SRAM: the current A block, 16 x 64
.equ C_S, 0x5000           # SRAM: the current C block, 16 x 64
.equ C_D, 0x0              # DRAM: C

.text
main:
    ld [B_S], envm[B], rows=64, cols=64
    # ---- block 0
    ld [A_S], envm[A], rows=16, cols=64, signal=pu
    matmul [C_S], [A_S], [B_S], a_stride=64, m=16, k=16, n=64, wait=ld
    matmul [C_S], [A_S + 64], [B_S + 16*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 128], [B_S + 32*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 192], [B_S + 48*ROW], a_stride=64, m=16, k=16, n=64, acc=1, signal=ld|st
    st dram[C_D], [C_S], rows=16, cols=64, wait=pu, signal=pu
    # ---- block 1
    ld [A_S], envm[A + BLOCK], rows=16, cols=64, wait=pu, signal=pu
    matmul [C_S], [A_S], [B_S], a_stride=64, m=16, k=16, n=64, wait=ld|st
    matmul [C_S], [A_S + 64], [B_S + 16*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 128], [B_S + 32*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 192], [B_S + 48*ROW], a_stride=64, m=16, k=16, n=64, acc=1, signal=ld|st
    st dram[C_D + BLOCK], [C_S], rows=16, cols=64, wait=pu, signal=pu
    # ---- block 2
    ld [A_S], envm[A + 2*BLOCK], rows=16, cols=64, wait=pu, signal=pu
    matmul [C_S], [A_S], [B_S], a_stride=64, m=16, k=16, n=64, wait=ld|st
    matmul [C_S], [A_S + 64], [B_S + 16*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 128], [B_S + 32*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 192], [B_S + 48*ROW], a_stride=64, m=16, k=16, n=64, acc=1, signal=ld|st
    st dram[C_D + 2*BLOCK], [C_S], rows=16, cols=64, wait=pu, signal=pu
    # ---- block 3 (last: no token for a next block)
    ld [A_S], envm[A + 3*BLOCK], rows=16, cols=64, wait=pu, signal=pu
    matmul [C_S], [A_S], [B_S], a_stride=64, m=16, k=16, n=64, wait=ld|st
    matmul [C_S], [A_S + 64], [B_S + 16*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 128], [B_S + 32*ROW], a_stride=64, m=16, k=16, n=64, acc=1
    matmul [C_S], [A_S + 192], [B_S + 48*ROW], a_stride=64, m=16, k=16, n=64, acc=1, signal=st
    st dram[C_D + 3*BLOCK], [C_S], rows=16, cols=64, wait=pu
    halt

.data envm, 0x0, "weights"
A:  .npy "data/matmul_a.npy"     # 64 x 64 fp32, multiples of 1/4 (exact products)
B:  .npy "data/matmul_b.npy"
