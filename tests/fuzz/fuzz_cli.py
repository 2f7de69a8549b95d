"""Run-input and command-line campaigns: damaged `.npz` inputs, entropy traces and random argument lists through
the real `main(argv)` of edgebert-emu, edgebert-as and edgebert-dis. A clean run exits 0; an error exits 2 with
exactly one `tool: error: ...` line; anything else (a traceback, another exit code) is an escape."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_ebin import seed_programs
from fuzz_engine import SEEDS, Escape, Tally, drive, guarded
from hypothesis import strategies as st

from edgebert.emulator import cli as emu_cli
from edgebert.isa import asm_cli, dis_cli
from edgebert.isa.ebin import save_ebin
from edgebert.isa.errors import EdgebertError

#: `--hw` values: bundled names, the shipped TOML files, and things that are not configs (binaries, devices).
HW_PATHS = ["edgebert-cmod", "ideal-256mac", "nope", "/dev/zero",
            *(str(p) for p in sorted((Path(__file__).resolve().parents[2] / "isa" / "configs").glob("*.toml")))]

TOOLS = {"edgebert-emu": emu_cli.main, "edgebert-as": asm_cli.main, "edgebert-dis": dis_cli.main}


@cache
def workdir() -> Path:
    """A private folder holding the seed program, its source and valid inputs (one per process)."""
    d = Path(tempfile.mkdtemp(prefix="edgebert-fuzz-"))
    save_ebin(seed_programs()[0], d / "prog.ebin")
    (d / "prog.s").write_text((SEEDS / "encoder.s").read_text())
    np.savez(d / "good.npz", input_ids=np.array([[0, 1, 2, 3, 3, 2, 1, 0]]), mask=np.zeros((1, 8), np.float32))
    (d / "trace.txt").write_text("0.9, 0.2\n0.1, 0.05\n")
    (d / "sub").mkdir()
    return d


class ToolError(EdgebertError):
    """The tool exited 2 with its one-line diagnostic: the clean way to refuse."""


def run_tool(tool: str, argv: list[str]) -> None:
    """Call the tool's main; escape unless it returns 0, or 2 with a `tool: error:` diagnostic on stderr (one line;
    the assembler adds the source line and a caret), or argparse's usage error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = TOOLS[tool](argv)
        except SystemExit as exc:  # argparse: usage errors exit 2 with a usage message
            code = exc.code if isinstance(exc.code, int) else 2
            if code not in (0, 2):
                raise Escape("exit", f"{tool} {argv}: SystemExit({exc.code!r})") from None
            if code == 2:
                raise ToolError("usage") from None
            return
    text = err.getvalue()
    if code == 0:
        return
    lines = [line for line in text.splitlines() if not line.startswith(f"{tool}: warning:")]
    if code != 2 or not lines or not lines[0].startswith(f"{tool}: error: ") or "Traceback" in text:
        raise Escape("exit", f"{tool} {argv}: exit code {code}, stderr {text[:400]!r}")
    raise ToolError(lines[0])


def check_report(path: Path) -> None:
    """A report the tool wrote must be strict JSON (no NaN/Infinity)."""
    if path.is_file():
        def refuse(name: str) -> None:
            raise Escape("nonfinite", f"{path.name} holds {name}")

        json.loads(path.read_text(), parse_constant=refuse)


# ---- inputs --------------------------------------------------------------------------------------------------

def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def bad_inputs(data: Any) -> tuple[bytes, list[str]]:
    """The bytes of one inputs file and extra arguments (e.g. --row)."""
    ids = np.array([[0, 1, 2, 3, 3, 2, 1, 0]])
    mask = np.zeros((1, 8), np.float32)
    kind = data.draw(st.sampled_from([
        "valid", "dtype", "shape", "zero_d", "range", "missing", "extra", "stacked", "truncated", "flipped", "npy",
        "empty", "member", "huge_header", "object", "text", "nan",
    ]))
    arrays: dict[str, Any] = {"input_ids": ids, "mask": mask}
    extra: list[str] = []
    if kind == "dtype":
        name = data.draw(st.sampled_from(["input_ids", "mask"]))
        dtype = data.draw(st.sampled_from(["bool", "complex64", "float32", "float64", "int8", "uint64", "<U3",
                                           "S2", "float16", "int64", "uint8", "datetime64[s]"]))
        arrays[name] = arrays[name].astype(dtype)
    elif kind == "shape":
        name = data.draw(st.sampled_from(["input_ids", "mask"]))
        shape = tuple(data.draw(st.lists(st.integers(0, 9), max_size=4)))
        arrays[name] = np.zeros(shape, arrays[name].dtype)
    elif kind == "zero_d":
        arrays = {"input_ids": np.array(3), "mask": np.array(0.5, np.float32)}
        extra = ["--row", "0"]
    elif kind == "range":
        arrays["input_ids"] = ids * data.draw(st.sampled_from([-1, 2, 2**20, 2**31, 2**40]))
        if data.draw(st.booleans()):
            arrays["input_ids"] = arrays["input_ids"].astype(np.uint64)
    elif kind == "missing":
        del arrays[data.draw(st.sampled_from(["input_ids", "mask"]))]
    elif kind == "extra":
        arrays["what"] = np.zeros(3)
    elif kind == "stacked":
        n = data.draw(st.integers(1, 4))
        arrays = {"input_ids": np.stack([ids] * n), "mask": np.stack([mask] * data.draw(st.integers(1, 4)))}
        extra = data.draw(st.sampled_from([[], ["--row", "0"], ["--row", "3"], ["--row", "-1"], ["--row", "99"]]))
    elif kind == "nan":
        arrays["mask"] = np.full((1, 8), data.draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e38])), np.float32)
    elif kind == "object":
        arrays["mask"] = np.array([{"a": 1}, None], dtype=object)
    elif kind == "text":
        arrays["input_ids"] = np.array([["a", "bb"]])
    raw = _npz_bytes(arrays) if kind != "object" else _pickled_npz(arrays)
    if kind == "truncated":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flipped":
        raw = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        raw = bytes(raw)
    elif kind == "npy":
        buf = io.BytesIO()
        np.save(buf, ids)
        raw = buf.getvalue()
    elif kind == "empty":
        raw = b""
    elif kind == "member":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("input_ids.npy", _npy(ids))
            zf.writestr(data.draw(st.sampled_from(["notes.txt", "dir/", "mask"])), b"hello")
        raw = buf.getvalue()
    elif kind == "huge_header":
        shape = data.draw(st.sampled_from([(4_000_000_000,), (1, 8_000_000_000), (2**40, 2**40), (1, 8)]))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("input_ids.npy", _npy(ids))
            zf.writestr("mask.npy", header.getvalue() + bytes(data.draw(st.integers(0, 64))))
        raw = buf.getvalue()
    return raw, extra


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _pickled_npz(arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in arrays.items():
            b = io.BytesIO()
            np.save(b, v, allow_pickle=True)
            zf.writestr(f"{k}.npy", b.getvalue())
    return buf.getvalue()


def campaign_inputs(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Bad run inputs (and entropy traces) through `edgebert-emu`."""
    d = workdir()
    tally = Tally("inputs")

    def body(data: Any) -> None:
        raw, extra = bad_inputs(data)
        path = d / "in.npz"
        path.write_bytes(raw)
        argv = [str(d / "prog.ebin"), "--inputs", str(path), "-q", *extra,
                "--outputs", str(d / "out.npz"), "--json", str(d / "report.json")]
        if data.draw(st.integers(0, 5)) == 0:
            trace = data.draw(st.sampled_from([b"\xff\xfe0.5\n", b"", b"nan, 1\n", b"-1\n", b"0.1, x\n", b"1e999\n",
                                               b"0.2\n" * 3, b"0.3, 0.1\n"]))
            (d / "trace.bin").write_bytes(trace)
            argv += ["--entropy-trace", str(d / "trace.bin"), "--row", str(data.draw(st.integers(-1, 3)))]

        def target() -> None:
            (d / "report.json").unlink(missing_ok=True)
            try:
                run_tool("edgebert-emu", argv)
            finally:
                check_report(d / "report.json")

        guarded(tally, raw, ".npz", target)

    return drive(tally, body, count, seed, deadline, chunk=100)


# ---- command lines -------------------------------------------------------------------------------------------

def _paths(d: Path) -> dict[str, list[str]]:
    ins = [str(d / "prog.ebin"), str(d / "prog.s"), str(d / "good.npz"), str(d / "trace.txt"), str(d / "nope"),
           str(d / "sub"), "/dev/zero", "/dev/null", "", "-", str(SEEDS / "encoder.s")]
    outs = [str(d / "o.bin"), str(d / "o.json"), str(d / "o.png"), str(d / "o.xyz"), str(d / "o"), str(d / "sub"),
            str(d / "missing" / "o.json"), "/dev/null", "/proc/version", str(d / "prog.ebin"), str(d / "prog.s"),
            str(d / "good.npz")]
    return {"in": ins, "out": outs}


def random_argv(data: Any, d: Path) -> tuple[str, list[str]]:
    paths = _paths(d)
    tool = data.draw(st.sampled_from(sorted(TOOLS)))
    argv = [data.draw(st.sampled_from(paths["in"]))]
    flags = {
        "edgebert-emu": ["--inputs", "--outputs", "--json", "--trace", "--plot", "--hw", "--max-cycles",
                         "--max-instructions", "--entropy-trace", "--row", "--check-uninit", "--race-trap",
                         "--timing-only", "--no-early-exit", "--no-dvfs", "--task", "--resident-task", "-q"],
        "edgebert-as": ["-o"],
        "edgebert-dis": ["-o"],
    }[tool]
    for _ in range(data.draw(st.integers(0, 5))):
        flag = data.draw(st.sampled_from(flags))
        argv.append(flag)
        if flag in ("--outputs", "--json", "--trace", "--plot", "-o"):
            argv.append(data.draw(st.sampled_from(paths["out"])))
        elif flag == "--hw":
            argv.append(data.draw(st.sampled_from(HW_PATHS + [str(d / "prog.ebin"), str(d / "nope"), str(d / "sub")])))
        elif flag in ("--inputs", "--entropy-trace"):
            argv.append(data.draw(st.sampled_from(paths["in"])))
        elif flag in ("--max-cycles", "--max-instructions", "--row"):
            argv.append(data.draw(st.sampled_from(["0", "1", "-1", "100", "99999999999999999999", "x", "1e3"])))
        elif flag in ("--task", "--resident-task"):
            argv.append(data.draw(st.sampled_from(["sst2", "", "x"])))
    if "-q" not in argv and tool == "edgebert-emu":
        argv.append("-q")
    return tool, argv


def campaign_cli(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Random argument lists (paths that exist or not, devices, directories, the input as output, bad numbers)."""
    d = workdir()
    tally = Tally("cli")
    pristine = {str(p): p.read_bytes() for p in (d / "prog.ebin", d / "prog.s", d / "good.npz", d / "trace.txt")}

    def body(data: Any) -> None:
        tool, argv = random_argv(data, d)
        inputs = {argv[0]} | {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--inputs", "--hw",
                                                                                  "--entropy-trace")}

        def target() -> None:
            try:
                run_tool(tool, argv)
            finally:
                changed = []
                for p, content in pristine.items():
                    if Path(p).read_bytes() != content:
                        Path(p).write_bytes(content)
                        changed.append(p)
            touched = [p for p in changed if p in inputs]
            if touched:
                raise Escape("overwrite", f"{tool} {argv} changed its input {touched[0]}")

        guarded(tally, json.dumps([tool, *argv]).encode(), ".json", target)

    return drive(tally, body, count, seed, deadline, chunk=100)
