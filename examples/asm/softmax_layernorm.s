# Attention-style post-processing of one 16 x 64 tile: P = softmax(X * 0.125), Y = layernorm(P) * gamma + beta.
#
# X comes from DRAM, gamma/beta from eNVM. The SFU runs softmax then layernorm in order; tokens:
#   ld beta (last load; ld is in order) --signal=sfu--> softmax
#   softmax   --signal=st--> st P
#   layernorm --signal=st--> st Y
.hwdefault
.meta outputs, [{"name": "P", "space": "dram", "address": 8192, "shape": [16, 64], "dtype": "float32"}, {"name": "Y", "space": "dram", "address": 12288, "shape": [16, 64], "dtype": "float32"}]

.equ X_S, 0x0000           # SRAM tiles
.equ P_S, 0x1000
.equ Y_S, 0x2000
.equ G_S, 0x3000
.equ BETA_S, 0x3100

.text
    ld [X_S], dram[X], rows=16, cols=64
    ld [G_S], envm[GAMMA], rows=1, cols=64
    ld [BETA_S], envm[BETA], rows=1, cols=64, signal=sfu
    softmax [P_S], [X_S], rows=16, cols=64, scale=0.125, wait=ld, signal=st
    layernorm [Y_S], [P_S], [G_S], [BETA_S], rows=16, cols=64, eps=1e-05, signal=st
    st dram[P], [P_S], rows=16, cols=64, wait=sfu
    st dram[Y], [Y_S], rows=16, cols=64, wait=sfu
    halt

.data dram, 0x0, "activations"
X:  .npy "data/softmax_x.npy"    # 16 x 64 fp32 scores
.sym P, dram, 0x2000, 4096       # outputs (not initialized)
.sym Y, dram, 0x3000, 4096

.data envm, 0x0, "layernorm"
GAMMA:
    .f32 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5
    .f32 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5
    .f32 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5
    .f32 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5, 1.0, 0.5, 2.0, 1.5
.size GAMMA, 256
BETA:
    .f32 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5
    .f32 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5
    .f32 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5
    .f32 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5, 0.0, 0.25, -0.25, 0.5
.size BETA, 256
