"""edgebert.isa: the instruction table, encoding, `.ebin` container, assembler and disassembler.

`table` (one entry per instruction: the single source of truth), `encoding` (encode/decode words), `program`
(the in-memory program), `ebin` (the container), `assembler` (+ `asm.lark`, `asm_cli`: edgebert-as),
`disassembler` (+ `dis_cli`: edgebert-dis), `docgen` (docs/isa.md), `hardware` (the hardware
config; bundled configs in `configs/*.toml`), `costs` (cycle costs of every instruction from the config, shared by
the compiler's tiling and the emulator), `program_config` (which config a program runs on), `adaptivfloat` (AF8), and helpers every package shares: `errors` (the exception root and `run_cli`),
`bits` (f32 bit patterns, sparse mask sizes), `units` (durations), `traces` (EdgeBERT's entropy-trace and
lookup-table files).
"""
