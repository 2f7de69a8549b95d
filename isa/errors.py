"""The one exception root of edgebert and its specialised subclasses."""

from __future__ import annotations

import sys
import warnings
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


class EdgebertWarning(UserWarning):
    """Something a user should know that does not stop the work (a what-if config, entropies left unused); library
    code warns with `warnings.warn(msg, EdgebertWarning)`, CLIs print it as `prog: warning: msg`."""


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """Run a command-line tool's body: an EdgebertError becomes one `prog: error: ...` line on stderr and exit code 2
    (no traceback), an EdgebertWarning one `prog: warning: ...` line as it is raised; anything else propagates."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def hook(message: Warning | str, category: type[Warning], *args: object, **kw: object) -> None:
            if issubclass(category, EdgebertWarning):
                print(f"{prog}: warning: {message}", file=sys.stderr)
            else:
                show(message, category, *args, **kw)  # type: ignore[arg-type]

        warnings.showwarning = hook
        warnings.simplefilter("always", EdgebertWarning)
        try:
            return body()
        except EdgebertError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
