"""Sweep results: the row journal written as each point finishes (`results.jsonl`: an interrupt loses only the points
in flight) and the tables built from it (`results.parquet` with pyarrow, `results.csv`), one row per point."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from edgebert.isa.errors import EdgebertError

JOURNAL = "results.jsonl"
PARQUET = "results.parquet"
CSV = "results.csv"


def _plain(value: Any) -> Any:
    """JSON-safe: NaN/inf as None (numpy scalars as Python numbers)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Journal:
    """Append-only rows, one JSON object per line, flushed and synced per row."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL

    def read(self) -> list[dict[str, Any]]:
        """Every complete row (a torn last line, from a kill mid-write, is dropped)."""
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps({k: _plain(v) for k, v in row.items()}, separators=(",", ":")) + "\n"
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise EdgebertError(f"{self.path}: cannot write: {exc.strerror}") from None

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace the journal (after `--resume` dropped a torn line or the rows were re-marked)."""
        tmp = self.path.with_suffix(".jsonl.part")
        tmp.write_text("".join(json.dumps({k: _plain(v) for k, v in r.items()}, separators=(",", ":")) + "\n"
                               for r in rows), encoding="utf-8")
        tmp.replace(self.path)


def latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point id (the last written wins), sorted by point index."""
    by_id = {r["point_id"]: r for r in rows}
    return sorted(by_id.values(), key=lambda r: (r["point"], r["point_id"]))


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column, in the order rows first name them (ok rows first: identity, parameters, status, metrics)."""
    order: dict[str, None] = {}
    for r in sorted(rows, key=lambda r: r.get("status") != "ok"):
        order.update(dict.fromkeys(r))
    return list(order)


def write_tables(rows: list[dict[str, Any]], out_dir: Path) -> None:
    """`results.parquet` and `results.csv` (written to temporary names, then renamed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    cols = columns(rows)
    arrays = [_column([_plain(r.get(c)) for r in rows]) for c in cols]
    table = pa.Table.from_arrays(arrays, names=cols) if cols else pa.table({})
    for name, write in ((PARQUET, lambda p: pq.write_table(table, p)), (CSV, lambda p: pacsv.write_csv(table, p))):
        tmp = out_dir / f".{name}.part"
        write(str(tmp))
        tmp.replace(out_dir / name)


def _column(values: list[Any]) -> Any:
    """A pyarrow array of one column; mixed types (e.g. numbers and labels) become text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
