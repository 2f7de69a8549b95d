# Early exit over a loop of N "layers" sharing one weight matrix (ALBERT-style), EdgeBERT's scheme:
#   h = tanh(h @ W); logits = h @ Wc; H = entropy(softmax(logits)); exit when H < THRESHOLD.
# DVFS: run the first layer at the fastest operating point, then look the first layer's entropy up
# in a table (entropy bin -> operating point, EdgeBERT's latency-aware prediction) and switch.
# The layer the program exited after (1-based) is stored to the exit_layer word.
#
# Tokens inside the loop balance every iteration, so no priming is needed:
#   matmul h@W --signal=sfu--> tanh --signal=pu--> matmul h@Wc --signal=sfu--> entropy
# Loop-carried reuse is safe by unit order (the pu reads h only after tanh signalled, and so on).
# Loads before the loop are fenced with a barrier; the final store follows a barrier too.
.hwdefault
.meta exit_layer, {"space": "dram", "address": 256}
.meta outputs, [{"name": "logits", "space": "dram", "address": 0, "shape": [1, 4], "dtype": "float32"}]
.meta thresholds, [0.05]

.equ N, 6                   # layers
.equ H_S, 0x000             # SRAM: hidden state h, 1 x 16
.equ T_S, 0x040             # SRAM: h @ W, 1 x 16
.equ L_S, 0x080             # SRAM: logits, 1 x 4
.equ W_S, 0x100             # SRAM: W, 16 x 16
.equ WC_S, 0x500            # SRAM: Wc, 16 x 4

.text
    dvfs 6                  # fastest point for the first layer
    li r1, 0                # layers done
    li r2, N
    li r3, 1
    ld [W_S], envm[W], rows=16, cols=16
    ld [WC_S], envm[WC], rows=16, cols=4
    ld [H_S], envm[H0], rows=1, cols=16
    barrier
layer:
    addi r1, r1, 1
    matmul [T_S], [H_S], [W_S], m=1, k=16, n=16, signal=sfu
    tanh [H_S], [T_S], rows=1, cols=16, wait=pu, signal=pu
    matmul [L_S], [H_S], [WC_S], m=1, k=16, n=4, wait=sfu, signal=sfu
    entropy f1, [L_S], n=4, wait=pu
    bexit f1, 0.05, exit    # waits for f1
    bne r1, r3, next        # only after the first layer:
    lut r4, f1, envm[PREDICT], nbins=8, scale=8.0
    dvfsr r4
next:
    blt r1, r2, layer
exit:
    barrier
    st dram[LOGITS], [L_S], rows=1, cols=4
    sw r1, dram[EXIT_LAYER]
    halt

.data envm, 0x0, "model"
W:       .npy "data/early_exit_w.npy"     # 16 x 16
WC:      .npy "data/early_exit_wc.npy"    # 16 x 4
H0:      .f32 -1.0, -0.8666667, -0.73333335, -0.6, -0.46666667, -0.33333334, -0.2, -0.06666667
         .f32 0.06666667, 0.2, 0.33333334, 0.46666667, 0.6, 0.73333335, 0.8666667, 1.0
.size H0, 64
PREDICT: .i32 2, 3, 4, 5, 6, 6, 6, 6    # entropy bin (floor(H * 8)) -> operating point
.size PREDICT, 32

.sym LOGITS, dram, 0x0, 16
.sym EXIT_LAYER, dram, 0x100, 4
