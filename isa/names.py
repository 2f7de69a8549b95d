"""The one rule for names in assembly (labels, `.equ` constants, symbols), shared by assembler and disassembler."""

from __future__ import annotations

import re

#: A name: a letter or underscore, then letters, digits, `_` and `.` (local labels add a leading `.L`).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
#: Register spellings (`r<digits>`, `f<digits>`): never names, whatever the context.
REGISTER_LIKE = re.compile(r"[rf][0-9]+")
#: Longest name accepted (a name is an identifier, not a payload).
MAX_NAME_CHARS = 1024


def name_problem(name: str) -> str | None:
    """Why `name` cannot be written in assembly as a label, constant or symbol, or None when it can."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return f"names match {NAME.pattern}"
    if REGISTER_LIKE.fullmatch(name):
        return "r<n> and f<n> are register names"
    if len(name) > MAX_NAME_CHARS:
        return f"names are at most {MAX_NAME_CHARS} characters"
    return None


def show_int(value: int) -> str:
    """An integer for a message: its digits, or its size when printing it would be absurd (or impossible: Python
    refuses str() of ints beyond 4300 digits)."""
    return str(value) if abs(value) < 10**30 else f"a {value.bit_length()}-bit integer"
