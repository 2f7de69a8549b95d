"""Run the README's command blocks as a new user would paste them, from the repository root, in order.

    python scripts/check_readme.py            # every block (an hour or more: training, benchmarks, sweeps)
    python scripts/check_readme.py --list     # the blocks and their commands
    python scripts/check_readme.py --fast     # only the blocks marked fast (what tests/packaging/test_readme.py runs)
    python scripts/check_readme.py --from 7   # resume at block 7

Blocks are the README's ```sh and ```python fences (```text fences are synopses, never run); a block preceded by
`<!-- readme: fast -->` is cheap enough for the test suite. Each block runs in bash (`set -e`, the venv's bin first
on PATH; python blocks through the venv's python) and must exit 0 and write nothing outside `out/` (checked with git
status). Prints each block's wall time and the machine's load average, and exits 1 when any block fails.
The same module parses the blocks for the fast test: `blocks`, `commands`, `output_paths`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FAST_MARK = "<!-- readme: fast -->"
RUN_LANGS = ("sh", "python")
#: Flags whose value is a file or folder the command writes (every one must be under out/).
OUTPUT_FLAGS = ("-o", "--output", "--json", "--csv", "--plot", "--trace", "--outputs", "--onnx", "--onnx-dir",
                "--lookup-table", "--calibration-trace", "--eval-inputs", "--out")
#: ... and flags that write only for some tools (an input elsewhere).
WRITER_ONLY = {"--inputs": ("build_albert.py", "build_encoder.py"),
               "--entropy-trace": ("train_compressed.py",)}
#: Generated at run time, never a stray output of a README command.
IGNORED = ("out/", ".venv/", ".pytest_cache/", ".ruff_cache/", ".hypothesis/", "__pycache__/", "build/",
           "edgebert.egg-info/")


@dataclass
class Block:
    """One fenced block: its number (1-based, in README order), language, first line, text and whether it is fast."""

    index: int
    lang: str
    line: int
    text: str
    fast: bool


def blocks(text: str) -> list[Block]:
    """Every fenced block with a language of RUN_LANGS or `text`, in order."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        fast = start > 0 and lines[start - 1].strip() == FAST_MARK
        out.append(Block(len(out) + 1, lang, start + 1, "\n".join(lines[i + 1 : j]), fast))
        i = j + 1
    return out


def _logical_lines(text: str) -> list[str]:
    """Shell lines with continuations joined and multi-line quoted strings kept whole."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out, acc = [], ""
    for line in joined.splitlines():
        acc = f"{acc}\n{line}" if acc else line
        try:
            shlex.split(acc, comments=True)
        except ValueError:  # an open quote: the string goes on
            continue
        if acc.strip():
            out.append(acc)
        acc = ""
    return out


def commands(block: Block) -> list[list[str]]:
    """The argv of every command in a shell block (operators split, redirections kept as `>` `FILE` pairs, the
    keywords of a `for` loop dropped)."""
    if block.lang != "sh":
        return []
    out = []
    for line in _logical_lines(block.text):
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lex.whitespace_split = True
        lex.commenters = "#"
        argv: list[str] = []
        for tok in [*lex, ";"]:
            if tok in (";", "&&", "||", "|", "&"):
                while argv and argv[0] in ("do", "then", "else"):
                    argv.pop(0)
                if argv and argv[0] not in ("for", "done", "fi", "if", "while"):
                    out.append(argv)
                argv = []
            else:
                argv.append(tok)
    return out


def output_paths(argv: list[str]) -> list[str]:
    """The files and folders a command writes: values of OUTPUT_FLAGS (and of WRITER_ONLY for the tools that write
    them) and redirection targets."""
    tool = " ".join(argv[:2])
    out = []
    for i, tok in enumerate(argv[:-1]):
        flag, _, inline = tok.partition("=")
        value = inline or argv[i + 1]
        if flag in OUTPUT_FLAGS or (flag in WRITER_ONLY and any(t in tool for t in WRITER_ONLY[flag])):
            out.append(value)
        elif tok in (">", ">>"):
            out.append(argv[i + 1])
    return out


def tool_argv(argv: list[str]) -> list[str]:
    """The command line the tool itself sees (redirections removed)."""
    out, skip = [], False
    for tok in argv:
        if skip:
            skip = False
        elif tok in (">", ">>", "<", "2>"):
            skip = True
        else:
            out.append(tok)
    return out


def stray_files() -> set[str]:
    """Untracked or modified paths outside IGNORED (what a command wrote where it should not)."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    paths = {line[3:] for line in status.splitlines()}
    return {p for p in paths if not p.startswith(IGNORED) and "/__pycache__/" not in p}


def run_block(block: Block, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[int, float, str]:
    """Run one block; (exit code, wall seconds, the output's last lines)."""
    venv = ROOT / ".venv" / "bin"
    env = dict(env or os.environ)
    env["PATH"] = f"{venv}{os.pathsep}{env.get('PATH', '')}"
    if block.lang == "python":
        argv = [str(venv / "python"), "-c", block.text]
    else:
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return proc.returncode, time.perf_counter() - t0, tail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="check_readme", description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="list the blocks and their commands, run nothing")
    p.add_argument("--fast", action="store_true", help="only the blocks marked fast")
    p.add_argument("--from", dest="start", type=int, default=1, metavar="N", help="start at block N")
    p.add_argument("--only", type=int, action="append", metavar="N", help="only block N (repeatable)")
    p.add_argument("--keep-going", action="store_true", help="run the later blocks after a failure")
    args = p.parse_args(argv)
    chosen = [b for b in blocks(README.read_text()) if b.lang in RUN_LANGS and b.index >= args.start
              and (not args.fast or b.fast) and (not args.only or b.index in args.only)]
    if args.list:
        for b in chosen:
            print(f"block {b.index} (README line {b.line}, {b.lang}{', fast' if b.fast else ''}):")
            for c in commands(b) or [[b.text.splitlines()[0] + " ..."]]:
                print("   ", shlex.join(c))
        return 0
    failed = []
    before = stray_files()
    for b in chosen:
        load = os.getloadavg()[0]
        code, seconds, tail = run_block(b)
        stray = stray_files() - before
        ok = code == 0 and not stray
        print(f"block {b.index:2d} (README line {b.line}): {'ok' if ok else 'FAILED'} in {seconds:7.1f} s "
              f"(load average {load:.1f} at start)", flush=True)
        if stray:
            print(f"    wrote outside out/: {sorted(stray)}")
        if not ok:
            print("    " + tail.replace("\n", "\n    "))
            failed.append(b.index)
            if not args.keep_going:
                break
        before |= stray
    print(f"{len(chosen) - len(failed)} of {len(chosen)} blocks ok" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
