"""edgebert.isa: the instruction table, encoding, `.ebin` container, assembler and disassembler."""
