"""What every edgebert command line shares: `--version`, `-q`/`-v`, `--hw`, `--json`, `--csv`, `--plot`, `--task`,
`--entropy-trace`, with one metavar and one help text per flag (tests/packaging/test_cli_flags.py checks them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

#: Help of the shared flags: a tool may append its own default in parentheses, never reword them.
HELP = {
    "--version": "print the edgebert version and exit",
    "--quiet": "quiet: print only warnings and errors (no tables, summaries or progress bars)",
    "--verbose": "verbose: also print",
    "--hw": "hardware config: a bundled name (ideal-256mac, edgebert-cmod) or a TOML file in the same schema",
    "--json": "machine-readable results: write",
    "--csv": "spreadsheet-ready results: write",
    "--plot": "draw",
    "--task": "multi-task program: the task to",
    "--inputs": "program inputs: an .npz with one array per input name",
    "--entropy-trace": "recorded entropies to replay, one sentence per line, one comma-separated value per exit "
                       "(the format of EdgeBERT's sst2_eval_entropy.txt)",
}
#: Metavars of the shared flags.
METAVAR = {"--inputs": "NPZ", "--hw": "NAME|FILE", "--json": "FILE", "--csv": "FILE", "--plot": "FILE", "--task": "NAME",
           "--entropy-trace": "FILE"}
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def version() -> str:
    """The installed edgebert's version ('unknown' when it is not installed, e.g. run from a source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("edgebert")
    except PackageNotFoundError:
        return "unknown"


def add_version(p: argparse.ArgumentParser) -> None:
    """`--version`: `PROG (edgebert X.Y.Z)`."""
    p.add_argument("--version", action="version", version=f"%(prog)s (edgebert {version()})", help=HELP["--version"])


def add_verbosity(p: argparse.ArgumentParser | Any, verbose: str | None = None) -> None:
    """`-q/--quiet`, and `-v/--verbose` ("verbose: also print <verbose>") when the tool has more to say."""
    p.add_argument("-q", "--quiet", action="store_true", help=HELP["--quiet"])
    if verbose is not None:
        p.add_argument("-v", "--verbose", action="store_true", help=f"{HELP['--verbose']} {verbose}")


def add_hw(p: argparse.ArgumentParser | Any, default: str) -> None:
    """`--hw NAME|FILE` (`default`: what the tool uses without it)."""
    p.add_argument("--hw", metavar=METAVAR["--hw"], default=None, help=f"{HELP['--hw']} (default: {default})")


def add_json(p: argparse.ArgumentParser | Any, what: str) -> None:
    """`--json FILE`: `what` as strict JSON."""
    p.add_argument("--json", metavar=METAVAR["--json"], default=None, help=f"{HELP['--json']} {what} to FILE (JSON)")


def add_csv(p: argparse.ArgumentParser | Any, what: str) -> None:
    """`--csv FILE`: `what` as CSV."""
    p.add_argument("--csv", metavar=METAVAR["--csv"], default=None, help=f"{HELP['--csv']} {what} to FILE (CSV)")


def add_plot(p: argparse.ArgumentParser | Any, what: str) -> None:
    """`--plot FILE`: a figure of `what`, its format from the suffix."""
    p.add_argument("--plot", metavar=METAVAR["--plot"], default=None,
                   help=f"{HELP['--plot']} {what} to FILE (.png; .svg or .pdf: vector, for papers)")


def add_task(p: argparse.ArgumentParser | Any, what: str) -> None:
    """`--task NAME`: the task of a multi-task program (docs/multitask.md)."""
    p.add_argument("--task", metavar=METAVAR["--task"], default=None, help=f"{HELP['--task']} {what}")


def add_inputs(p: argparse.ArgumentParser | Any, more: str, metavar: str = METAVAR["--inputs"], **kw: Any) -> None:
    """`--inputs NPZ` (`more`: what the tool does with them)."""
    p.add_argument("--inputs", metavar=metavar, help=f"{HELP['--inputs']}; {more}", **kw)


def add_entropy_trace(p: argparse.ArgumentParser | Any, more: str = "") -> None:
    """`--entropy-trace FILE`."""
    p.add_argument("--entropy-trace", metavar=METAVAR["--entropy-trace"], default=None,
                   help=HELP["--entropy-trace"] + (f"; {more}" if more else ""))


class DeprecatedAlias(argparse.Action):
    """An old spelling of a flag: stores into the new flag's destination and warns once on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, prog: str, **kw: Any) -> None:
        self.new, self.prog = new, prog
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{self.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p: argparse.ArgumentParser | Any, old: str, new: str, dest: str, prog: str,
                         metavar: str | None = None) -> None:
    """`old` as a deprecated spelling of `new` (same destination; help says so)."""
    p.add_argument(old, dest=dest, action=DeprecatedAlias, new=new, prog=prog, metavar=metavar,
                   help=f"deprecated spelling of {new}")
