# Fuzzing seed: a one-layer encoder in miniature that touches every boundary the fuzzers attack:
# int64 token ids and a float mask as inputs, an embedding gather from a data segment, matmul, masked softmax,
# layer norm, entropy with an early exit, an exit_layer word and two outputs.
.hwdefault
.meta inputs, [{"name": "input_ids", "space": "dram", "address": 4096, "shape": [1, 8], "dtype": "int64"}, {"name": "mask", "space": "dram", "address": 4160, "shape": [1, 8], "dtype": "float32"}]
.meta outputs, [{"name": "logits", "space": "dram", "address": 0, "shape": [1, 4], "dtype": "float32"}, {"name": "hidden", "space": "dram", "address": 256, "shape": [8, 8], "dtype": "float32"}]
.meta exit_layer, {"space": "dram", "address": 512}
.meta thresholds, [0.5]
.meta tasks, ["sst2"]

.equ IDS_S, 0x000          # SRAM: token ids, 8 int32
.equ MASK_S, 0x040         # SRAM: mask row, 8 f32
.equ X_S, 0x100            # SRAM: embeddings, 8 x 8
.equ S_S, 0x200            # SRAM: scores, 8 x 8
.equ P_S, 0x300            # SRAM: probabilities, 8 x 8
.equ W_S, 0x400            # SRAM: W, 8 x 8
.equ WC_S, 0x500           # SRAM: Wc, 8 x 4
.equ L_S, 0x580            # SRAM: logits, 1 x 4
.equ G_S, 0x600            # SRAM: gamma, beta

.text
    li r1, 0
    ld [IDS_S], dram[0x1000], rows=1, cols=8, dtype=i32
    ld [MASK_S], dram[0x1040], rows=1, cols=8
    ld [W_S], envm[W], rows=8, cols=8
    ld [WC_S], envm[WC], rows=8, cols=4
    ld [G_S], envm[GB], rows=1, cols=16
    barrier
    gather [X_S], envm[EMB], [IDS_S], rows=8, cols=8
    barrier
    matmul [S_S], [X_S], [X_S], m=8, k=8, n=8, trans_b=1, signal=sfu
    softmax [P_S], [S_S], rows=8, cols=8, mask=MASK_S, has_mask=1, scale=0.35, wait=pu, signal=pu
    matmul [X_S], [P_S], [W_S], m=8, k=8, n=8, wait=sfu, signal=sfu
    layernorm [X_S], [X_S], [G_S], [G_S + 32], rows=8, cols=8, eps=1e-5, wait=pu, signal=pu
    matmul [L_S], [X_S], [WC_S], m=1, k=8, n=4, wait=sfu, signal=sfu
    entropy f1, [L_S], n=4, wait=pu
    addi r1, r1, 1
    bexit f1, 0.5, done
    addi r1, r1, 1
done:
    barrier
    st dram[0x0], [L_S], rows=1, cols=4
    st dram[0x100], [X_S], rows=8, cols=8
    sw r1, dram[0x200]
    halt

.data envm, 0x0, "weights"
EMB: .f32 0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8
     .f32 0.2, 0.1, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8
     .f32 -0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8
     .f32 0.9, -0.9, 0.8, -0.8, 0.7, -0.7, 0.6, -0.6
.size EMB, 128
W:   .f32 0.5, 0.1, 0.0, 0.0, 0.2, 0.0, 0.0, 0.1
     .f32 0.1, 0.5, 0.1, 0.0, 0.0, 0.2, 0.0, 0.0
     .f32 0.0, 0.1, 0.5, 0.1, 0.0, 0.0, 0.2, 0.0
     .f32 0.0, 0.0, 0.1, 0.5, 0.1, 0.0, 0.0, 0.2
     .f32 0.2, 0.0, 0.0, 0.1, 0.5, 0.1, 0.0, 0.0
     .f32 0.0, 0.2, 0.0, 0.0, 0.1, 0.5, 0.1, 0.0
     .f32 0.0, 0.0, 0.2, 0.0, 0.0, 0.1, 0.5, 0.1
     .f32 0.1, 0.0, 0.0, 0.2, 0.0, 0.0, 0.1, 0.5
WC:  .f32 1.0, -1.0, 0.5, -0.5, 0.25, 0.75, -0.25, 0.1
     .f32 -1.0, 1.0, -0.5, 0.5, 0.3, -0.3, 0.2, -0.2
     .f32 0.5, 0.5, -0.5, -0.5, 0.1, 0.2, 0.3, 0.4
     .f32 -0.4, -0.3, -0.2, -0.1, 1.0, 0.0, 0.0, 1.0
GB:  .f32 1.0, 1.1, 0.9, 1.2, 0.8, 1.0, 1.05, 0.95
     .f32 0.0, 0.1, -0.1, 0.05, -0.05, 0.0, 0.2, -0.2
