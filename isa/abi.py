"""The conventions compiled programs follow: which register holds what, and the names of the labels and data the
code, the linker (compiler/link.py) and the emulator's reports rely on. Every register number lives here."""

from __future__ import annotations

# ---- scalar registers --------------------------------------------------------------------------------------------
R_ZERO = 0  # reads 0: a base register of 0 means an absolute address
R_LAYER = 1  # layer loops: layers done so far (the loop counter; early exit and DVFS read it)
R_LAYER_LIMIT = 2  # layer loops: the trip count
R_EXIT = 3  # early exit: the exit layer (1-based), stored to the exit word
R_PRED = 4  # the exit layer predicted after layer 1 (0 before): DVFS and the forced exit (bexitp) read it
R_OFF = 5  # latency-aware DVFS: 4 * R_PRED, the byte offset into the point and recovery tables
R_TMP = 6  # scratch of the exit code
R_HEAD = 7  # looped exit heads: base of the head constant table (R_LAYER * one head's block)
R_WEIGHTS = 8  # layer loops with per-layer weights: base of the layer's block of the weight table
R_TASK_TMP = 10  # multi-task entry block: scratch
R_SELECTED_PLUS_1 = 11  # multi-task entry block: selected task index + 1 (the loaded-task word's value)
R_LOADED = 12  # multi-task entry block: the task whose block is in the SRAM task region, + 1 (0: none)
R_SELECTED = 13  # multi-task entry block: the task-select word
R_TASK = 14  # multi-task: base address of the selected task's block; every task-weight operand is R_TASK + offset

# ---- float registers -----------------------------------------------------------------------------------------------
F_ENTROPY = 1  # early exit: entropy of the latest exit head's logits
F_THRESHOLD = 7  # multi-task: the selected task's exit threshold (bexitr reads it)

# ---- labels and named data -----------------------------------------------------------------------------------------
EXIT_LABEL = "ee.exit"  # the exit path every exit branch jumps to
EXIT_WORD = "exit_layer"  # DRAM word the exit path stores R_EXIT to (program metadata `exit_layer`)
EXIT_LOGITS = "exit.logits"  # SRAM row every exit head's logits are copied into
HEAD_TABLE = "ee.head_table"  # looped exit heads: L blocks of per-head constants, read at R_HEAD + offset
WEIGHT_TABLE = "layer.weights"  # layer loops with per-layer weights: L blocks of constants, read at R_WEIGHTS + offset
DVFS_TABLES = ("dvfs.exit_table", "dvfs.point_table", "dvfs.recovery_table")  # patched once the plan is known
DVFS_BIN_TABLE = "dvfs.bin_table"  # bins planner: fine entropy index -> operating point (compiler/dvfs_bins.py)
TASK_BODY_LABEL = "mt.body"  # multi-task: the shared code after the entry block
