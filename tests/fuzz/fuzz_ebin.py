"""Structure-aware `.ebin` and metadata campaigns: mutate sections, metadata JSON, symbols and code words, fix the
checksums up so mutants reach the loader, the disassembler round trip and the emulator."""

from __future__ import annotations

import json
import struct
import zlib
from functools import cache
from typing import Any

import numpy as np
from fuzz_engine import SEEDS, Escape, Tally, check_finite, drive, guarded
from hypothesis import strategies as st

from edgebert.emulator import Runner
from edgebert.isa.assembler import assemble, assemble_file
from edgebert.isa.disassembler import disassemble
from edgebert.isa.ebin import ENTRY, HEADER, read_ebin, write_ebin
from edgebert.isa.encoding import decode, encode, make
from edgebert.isa.errors import EdgebertError, EncodingError
from edgebert.isa.program import Program
from edgebert.isa.safe_io import dumps_strict
from edgebert.isa.table import INSTRUCTIONS, SPACES, WORD_BYTES, Kind

#: Each mutant runs at most this long in emulated terms (a runaway is the budget's business, tested elsewhere).
FUZZ_MAX_CYCLES = 2_000_000
FUZZ_MAX_INSTRUCTIONS = 5_000


@cache
def seed_programs() -> tuple[Program, ...]:
    """The seeds: the fuzz encoder and the shipped examples (assembled once per process)."""
    examples = SEEDS.parents[2] / "examples" / "asm"
    paths = [SEEDS / "encoder.s", *(examples / n for n in ("early_exit.s", "softmax_layernorm.s"))]
    return tuple(assemble_file(p) for p in paths if p.is_file())


# ---- the container as editable parts ---------------------------------------------------------------------------

def split(data: bytes) -> tuple[list[Any], list[list[Any]]]:
    """Header fields and sections [kind, space, name_len, address, payload] of a well-formed file."""
    head = list(HEADER.unpack_from(data))
    sections = []
    for i in range(head[4]):
        kind, space, name_len, address, offset, size, _, res = ENTRY.unpack_from(data, HEADER.size + ENTRY.size * i)
        sections.append([kind, space, name_len, address, bytearray(data[offset : offset + size]), res])
    return head, sections


def join(head: list[Any], sections: list[list[Any]], fix: bool = True) -> bytes:
    """Serialize edited parts; with `fix`, offsets, sizes, checksums and the file size are made consistent."""
    offset = HEADER.size + ENTRY.size * len(sections)
    entries = []
    for kind, space, name_len, address, payload, res in sections:
        entries.append(ENTRY.pack(kind & 0xFF, space & 0xFF, name_len & 0xFFFF, address & 0xFFFFFFFF, offset,
                                  len(payload), zlib.crc32(payload), res))
        offset += len(payload)
    if fix:
        head[4], head[5], head[6] = len(sections), HEADER.size, offset
    packed = HEADER.pack(*head[:8], 0)
    table = b"".join(entries)
    crc = zlib.crc32(packed[:60] + table) if fix else head[8]
    return packed[:60] + struct.pack("<I", crc) + table + b"".join(bytes(s[4]) for s in sections)


# ---- value strategies ------------------------------------------------------------------------------------------

EXTREME_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 255, 256, 4095, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63,
                -(2**31), 10**30]
json_scalars = (st.none() | st.booleans() | st.sampled_from(EXTREME_INTS) | st.integers()
                | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(["", "x", "float32", "int64",
                "dram", "sram", "envm", "uint8", "bool", "input_ids", "logits", "\ud800", "sst2"]))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.sampled_from(["name", "space", "address", "shape", "dtype", "bytes", "tasks", "index", "x"]), c, max_size=4),
    max_leaves=10)


def mutate_json(data: Any, value: Any) -> Any:
    """One structured edit at a random path: delete, replace, duplicate, or widen a list."""
    op = data.draw(st.sampled_from(["replace", "delete", "duplicate", "shape", "int"]))
    if not isinstance(value, dict | list) or (not value) or data.draw(st.integers(0, 3)) == 0:
        if op == "shape":
            return data.draw(st.lists(st.sampled_from(EXTREME_INTS), max_size=5))
        if op == "int":
            return data.draw(st.sampled_from(EXTREME_INTS))
        return data.draw(json_values)
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = data.draw(st.sampled_from(keys))
    out = dict(value) if isinstance(value, dict) else list(value)
    if op == "delete" and data.draw(st.booleans()):
        del out[key]
    elif op == "duplicate" and isinstance(out, list):
        out.append(out[key])
    else:
        out[key] = mutate_json(data, value[key])
    return out


# ---- mutations -------------------------------------------------------------------------------------------------

def _code_index(sections: list[list[Any]]) -> int | None:
    return next((i for i, s in enumerate(sections) if s[0] == 1 and s[4]), None)


def mutate_field(data: Any, sections: list[list[Any]]) -> None:
    """Set one operand field of one instruction to an edge or random value (still decodable)."""
    i = _code_index(sections)
    if i is None:
        return
    payload = sections[i][4]
    n = len(payload) // WORD_BYTES
    k = data.draw(st.integers(0, n - 1))
    try:
        inst = decode(bytes(payload[k * WORD_BYTES : (k + 1) * WORD_BYTES]))
    except EncodingError:  # an earlier mutation broke this word
        return
    spec = inst.spec
    f = data.draw(st.sampled_from(spec.fields[1:])) if len(spec.fields) > 1 else None
    if f is None:
        return
    lo, hi = f.value_range()
    value = data.draw(st.sampled_from([lo, hi, min(max(0, lo), hi), min(1, hi), f.default, min(hi, max(lo, n)),
                                       min(hi, 64), min(hi, 4096)]) | st.integers(lo, hi))
    values = {**inst.values, f.name: value}
    values.pop("opcode", None)
    payload[k * WORD_BYTES : (k + 1) * WORD_BYTES] = encode(make(spec.mnemonic, **values))


def random_instruction(data: Any, n_code: int) -> bytes:
    spec = data.draw(st.sampled_from(INSTRUCTIONS))
    values = {}
    for f in spec.fields[1:]:
        lo, hi = f.value_range()
        if f.kind is Kind.TARGET:
            hi = min(hi, n_code + 1)
        elif f.name in ("rows", "cols", "m", "k", "n", "nbins") or f.name.endswith("stride"):
            hi = min(hi, 40)
        elif f.kind is Kind.ADDR:
            hi = min(hi, 0x2000)
        values[f.name] = data.draw(st.integers(lo, hi))
    return encode(make(spec.mnemonic, **values))


def mutate(data: Any, original: bytes) -> bytes:
    """One structure-aware mutant of a well-formed `.ebin` (checksums fixed up unless the mutation is raw)."""
    head, sections = split(original)
    fix = True
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["field", "field", "field", "inst", "codebits", "meta", "meta", "meta",
                                        "metatext", "segment", "symbols", "sections", "header", "bytes"]))
        if op == "field":
            mutate_field(data, sections)
        elif op == "inst" and (i := _code_index(sections)) is not None:
            n = len(sections[i][4]) // WORD_BYTES
            k = data.draw(st.integers(0, n))
            sections[i][4][k * WORD_BYTES : k * WORD_BYTES] = random_instruction(data, n)
        elif op == "codebits" and (i := _code_index(sections)) is not None:
            bit = data.draw(st.integers(0, len(sections[i][4]) * 8 - 1))
            sections[i][4][bit // 8] ^= 1 << bit % 8
        elif op in ("meta", "symbols", "metatext"):
            kind = 4 if op == "symbols" else 3
            idx = next((i for i, s in enumerate(sections) if s[0] == kind), None)
            if idx is None:
                continue
            payload = sections[idx][4]
            if op == "metatext":
                at = data.draw(st.integers(0, len(payload)))
                payload[at:at] = data.draw(st.sampled_from([b"{", b"}", b",", b"1e999", b"NaN", b'"', b"\xff",
                                                            b"[" * 2000, b"99999999999999999999999"]))
            else:
                try:
                    value = mutate_json(data, json.loads(payload.decode("utf-8", "surrogatepass")))
                except (ValueError, RecursionError):
                    continue
                sections[idx][4] = bytearray(json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        elif op == "segment":
            segs = [s for s in sections if s[0] == 2]
            if not segs:
                continue
            s = data.draw(st.sampled_from(segs))
            what = data.draw(st.sampled_from(["address", "space", "name_len", "flip", "truncate", "extend"]))
            if what == "address":
                s[3] = data.draw(st.sampled_from([0, 4, 0x40, 0x1000, 0x7FFF_FFFF, 0xFFFF_FFF0, 0xFFFF_FFFF]))
            elif what == "space":
                s[1] = data.draw(st.integers(0, len(SPACES)))
            elif what == "name_len":
                s[2] = data.draw(st.integers(0, len(s[4]) + 2))
            elif what == "flip" and s[4]:
                at = data.draw(st.integers(0, len(s[4]) - 1))
                s[4][at] ^= data.draw(st.integers(1, 255))
            elif what == "truncate":
                del s[4][data.draw(st.integers(0, len(s[4]))):]
            else:
                s[4] += bytes(data.draw(st.integers(1, 300)))
        elif op == "sections" and sections:
            what = data.draw(st.sampled_from(["drop", "duplicate", "swap", "kind"]))
            i = data.draw(st.integers(0, len(sections) - 1))
            if what == "drop":
                del sections[i]
            elif what == "duplicate":
                sections.insert(i, [*sections[i][:4], bytearray(sections[i][4]), sections[i][5]])
            elif what == "swap":
                j = data.draw(st.integers(0, len(sections) - 1))
                sections[i], sections[j] = sections[j], sections[i]
            else:
                sections[i][0] = data.draw(st.integers(0, 6))
        elif op == "header":
            which = data.draw(st.sampled_from([1, 2, 3, 7]))
            head[which] = {1: data.draw(st.integers(0, 3)), 2: data.draw(st.integers(0, 3)),
                           3: data.draw(st.binary(min_size=32, max_size=32)), 7: b"\1" * 8}[which]
            fix = data.draw(st.booleans())
        elif op == "bytes":
            raw = bytearray(join(head, sections))
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
            if data.draw(st.booleans()) or len(raw) < HEADER.size or HEADER.unpack_from(raw)[4] > 64:
                return bytes(raw)
            try:
                head, sections = split(bytes(raw))
            except struct.error:
                return bytes(raw)
    return join(head, sections, fix)


# ---- targets ---------------------------------------------------------------------------------------------------

def round_trip(program: Program) -> None:
    """Disassembly must re-assemble to the same bytes, or the disassembler must refuse with EncodingError."""
    try:
        text = disassemble(program)
    except EncodingError:
        return
    try:
        again = assemble(text, "<disassembly>")
    except EdgebertError as exc:
        raise Escape("roundtrip", f"disassembly does not re-assemble: {str(exc)[:300]}") from None
    if write_ebin(again) != write_ebin(program):
        raise Escape("roundtrip", "disassembly re-assembles to different bytes")


def fake_inputs(program: Program, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Valid-looking inputs for the program's declared inputs (ids small: the seed's table has 4 rows)."""
    out = {}
    for e in program.metadata.get("inputs", []):
        shape = tuple(e["shape"])
        if int(np.prod(shape, dtype=np.int64)) > 1 << 20:
            continue
        if e.get("dtype", "float32") == "float32":
            out[e["name"]] = rng.normal(size=shape).astype(np.float32)
        else:
            out[e["name"]] = rng.integers(0, 4, size=shape).astype(np.int64)
    return out


def run_program(program: Program, rng: np.random.Generator) -> None:
    """Run on the emulator (capped), then check the report is finite and strict JSON."""
    tasks = [t["name"] for t in (program.metadata.get("multitask") or {}).get("tasks", [])]
    runner = Runner(program, max_cycles=FUZZ_MAX_CYCLES, max_instructions=FUZZ_MAX_INSTRUCTIONS)
    result = runner.run(fake_inputs(program, rng), raise_on_trap=False, task=tasks[0] if tasks else None,
                        check_races=bool(rng.integers(2)))
    check_finite(result.report)
    dumps_strict(result.report)
    if result.trap is None and len(program.code) < 200 and rng.integers(4) == 0:
        n = sum(1 for i in program.code if i.mnemonic == "entropy")
        timed = runner.run(fake_inputs(program, rng), raise_on_trap=False, timing_only=True,
                           entropy_values=[0.1] * (4 * n + 4), task=tasks[0] if tasks else None)
        check_finite(timed.report)


def load_and_run(data: bytes, rng: np.random.Generator) -> None:
    program = read_ebin(data, "<mutant>")
    if rng.integers(8) == 0:  # parsing the disassembly is by far the slowest step; campaign_asm round-trips all
        round_trip(program)
    run_program(program, rng)


def campaign_ebin(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Structure-aware `.ebin` mutants through the reader, the disassembler round trip and the emulator."""
    originals = [write_ebin(p) for p in seed_programs()]
    tally = Tally("ebin")

    def body(data: Any) -> None:
        original = originals[data.draw(st.integers(0, len(originals) - 1))]
        mutant = mutate(data, original)
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        guarded(tally, mutant, ".ebin", lambda: load_and_run(mutant, rng))

    return drive(tally, body, count, seed, deadline)


# ---- metadata campaign -----------------------------------------------------------------------------------------

def _multitask_template(data: Any) -> dict[str, Any]:
    n = data.draw(st.integers(1, 3))
    return {
        "version": 1,
        "tasks": [{"name": f"t{i}", "index": i, "num_labels": 2, "label_names": ["a", "b"], "threshold": 0.3,
                   "block": {"space": "envm", "address": 0x40 * i, "bytes": 0x40}, "weight_bytes": 64,
                   "dvfs_table": None} for i in range(n)],
        "padded_labels": 4, "placement": data.draw(st.sampled_from(["sram", "envm"])),
        "task_region": {"space": "sram", "address": 0x4000, "bytes": 0x40},
        "loaded_word": {"space": "sram", "address": 0x4100},
        "task_select": {"space": "dram", "address": 0x2000},
        "shared_bytes": {"envm": 128},
    }


def campaign_meta(count: int, seed: int = 0, deadline: float | None = None) -> Tally:
    """Metadata built from the contract's keys, then perturbed: write, read back, run (with a task when multitask)."""
    base = seed_programs()[0]
    tally = Tally("meta")

    def body(data: Any) -> None:
        meta = json.loads(json.dumps(base.metadata))
        if data.draw(st.booleans()):
            meta["multitask"] = _multitask_template(data)
        for _ in range(data.draw(st.integers(1, 3))):
            key = data.draw(st.sampled_from(["inputs", "outputs", "exit_layer", "multitask", "thresholds", "tasks",
                                             "dvfs_table", "latency_target_s", "sram_peak_bytes", "early_exit",
                                             "hw_name", "x"]))
            meta[key] = mutate_json(data, meta.get(key))
        program = Program(base.code, base.segments, base.symbols, meta, base.hw_fingerprint)
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        artifact = json.dumps(meta, default=str).encode("utf-8", "surrogatepass")

        def target() -> None:
            loaded = read_ebin(write_ebin(program), "<mutant>")
            run_program(loaded, rng)
            if loaded.metadata.get("multitask") and rng.integers(2):
                names = [t["name"] for t in loaded.metadata["multitask"]["tasks"]]
                Runner(loaded, max_instructions=FUZZ_MAX_INSTRUCTIONS).run(
                    fake_inputs(loaded, rng), task=names[-1], resident_task=names[0], raise_on_trap=False)

        guarded(tally, artifact, ".json", target)

    return drive(tally, body, count, seed, deadline)
