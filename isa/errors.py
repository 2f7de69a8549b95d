"""The one exception root of edgebert and its specialised subclasses."""

from __future__ import annotations

import sys
from collections.abc import Callable


class EdgebertError(Exception):
    """Root of every error edgebert raises on purpose; CLIs catch it and exit with code 2."""


class IsaTableError(EdgebertError):
    """The instruction table itself is inconsistent (raised at import)."""


class EncodingError(EdgebertError):
    """An instruction cannot be encoded (field out of range) or a word cannot be decoded."""


class EbinError(EdgebertError):
    """A `.ebin` file is malformed; the message says what and at which offset."""


class AssemblyError(EdgebertError):
    """Bad assembly source; the message carries file:line:column, the line and a caret."""


class HardwareConfigError(EdgebertError):
    """An invalid hardware configuration; the message names the field."""


class EmulatorTrap(EdgebertError):
    """The emulated program trapped; the message names the PC and the instruction."""


class CompileError(EdgebertError):
    """A model cannot be compiled; the message names the node, op or buffer at fault."""


class FileAccessError(EdgebertError):
    """A file cannot be read or written as asked (unreadable, too large, unwritable, or would overwrite an input)."""


class MetadataError(EbinError):
    """Program metadata does not follow the contract of `isa/program.py`; the message names the field."""


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """Run a command-line tool's body: an EdgebertError becomes one `prog: error: ...` line on stderr and exit code 2
    (no traceback); anything else propagates."""
    try:
        return body()
    except EdgebertError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
