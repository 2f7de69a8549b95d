"""A run report as people read it: names spelled out, units scaled to the magnitude, terminal tables, CSV rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgebert.emulator.energy import COMPONENTS
from edgebert.emulator.profile import UNIT_NAMES
from edgebert.isa.table import SPACES
from edgebert.isa.units import ENERGY_UNITS, TIME_UNITS, format_bytes, format_energy, format_time, pick_unit

#: Energy components as a reader names them (report keys: `energy.COMPONENTS`).
COMPONENT_NAMES = {
    "mac_f32": "fp32 MACs",
    "mac_af8": "AF8 MACs",
    "sfu": "special-function unit",
    "ctl": "control (front end)",
    "dram": "DRAM",
    "envm": "eNVM",
    "sram": "SRAM",
    "leakage": "leakage",
    "dvfs_switch": "DVFS switches",
}
#: Memory levels as a reader names them.
LEVEL_NAMES = {"dram": "DRAM (off chip)", "envm": "eNVM (weights)", "sram": "SRAM (on chip)"}


def component_name(key: str) -> str:
    """`mac_f32` -> `fp32 MACs`; an unknown key as it is."""
    return COMPONENT_NAMES.get(key, key)


def operating_points(report: Mapping[str, Any]) -> str:
    """The operating points a run visited: `0.80 V / 800 MHz`, or `0.80 V / 800 MHz -> 0.55 V / 300 MHz`."""
    points = []
    for seg in report.get("dvfs", []):
        text = f"{seg['volts']:.2f} V / {seg['mhz']:.0f} MHz"
        if not points or points[-1] != text:
            points.append(text)
    return " -> ".join(points)


def one_line(report: Mapping[str, Any]) -> str:
    """`20,450 cycles, 25.56 µs, 2.898 µJ on ideal-256mac at 0.80 V / 800 MHz, exit after layer 3`."""
    text = (f"{report['cycles']:,} cycles, {format_time(report['seconds'])}, {format_energy(report['energy_j'])} on "
            f"{report['hw']} at {operating_points(report)}")
    if report.get("exit_layer") is not None:
        text += f", exit after layer {report['exit_layer']}"
    return text


def what_if_text(report: Mapping[str, Any]) -> str:
    """The run's what-if switches in words ('' for a plain run)."""
    w = report.get("what_if") or {}
    parts = [text for key, text in (("timing_only", "timing only"), ("disable_early_exit", "no early exit"),
                                    ("disable_dvfs", "no DVFS")) if w.get(key)]
    return ", ".join(parts)


def _table(title: str, columns: tuple[str, ...], rows: Any, caption: str | None = None) -> Any:
    """A rich table: the first column left-aligned (names), the others right-aligned (numbers)."""
    from rich.table import Table

    table = Table(title=title, caption=caption)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _pct(part: float, whole: float) -> str:
    if not whole:
        return "-"
    pct = 100 * part / whole
    return "<0.1 %" if 0 < pct < 0.05 else f"{pct:.1f} %"


def _num(value: float) -> str:
    """A table cell in the column's unit: 4 significant digits, never an exponent."""
    if value == 0:
        return "0"
    if abs(value) < 0.001:
        return "<0.001"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def summary_tables(report: Mapping[str, Any], *, layers: bool = True) -> list[Any]:
    """The terminal summary of a run (rich renderables): totals, energy per component, op classes with their
    roofline bound, layers, units, traffic, the DVFS timeline."""
    from rich.table import Table

    head = Table(title=f"edgebert-emu: {report.get('program') or 'program'} on {report['hw']}", show_header=False)
    head.add_row("instructions executed", f"{report['instructions']:,}")
    head.add_row("cycles", f"{report['cycles']:,}")
    head.add_row("time", format_time(report["seconds"]))
    head.add_row("energy", format_energy(report["energy_j"]))
    head.add_row("operating point", operating_points(report))
    head.add_row("MACs", f"{report['macs']:,}")
    head.add_row("exit layer", "-" if report["exit_layer"] is None else str(report["exit_layer"]))
    if what_if_text(report):
        head.add_row("what-if", what_if_text(report))
    head.add_row("races", "-" if report["race_count"] is None else str(report["race_count"]))
    out = [head]
    total = report["energy_j"]
    unit = pick_unit(list(report["energy_breakdown_j"].values()), ENERGY_UNITS)
    out.append(_table(f"energy per component ({unit[0]})", ("component", unit[0], "share"), (
        (component_name(k), _num(v / unit[1]), _pct(v, total))
        for k, v in report["energy_breakdown_j"].items() if v)))
    b = report.get("breakdown")
    if b:
        out.append(_op_class_table(b, total))
        if layers and len(b["layers"]) > 1:
            out.append(_layer_table(b["layers"], total))
    out.append(_table("units", ("unit", "busy cycles", "utilization"), (
        (f"{UNIT_NAMES.get(k, k)} ({k})", f"{u['busy_cycles']:,}", f"{100 * u['utilization']:.1f} %")
        for k, u in report["units"].items())))
    out.append(_table("memory traffic", ("level", "read", "written"), (
        (LEVEL_NAMES.get(level, level), format_bytes(t["read"]), format_bytes(t["write"]))
        for level, t in report["traffic_bytes"].items())))
    if len(report["dvfs"]) > 1:
        tu = pick_unit([s["start_s"] for s in report["dvfs"]] + [report["seconds"]], TIME_UNITS)
        eu = pick_unit([s["energy_j"] for s in report["dvfs"]], ENERGY_UNITS)
        out.append(_table("DVFS timeline", ("operating point", "V", "MHz", f"start ({tu[0]})", "cycles",
                                            f"energy ({eu[0]})"), (
            (str(s["point"]), f"{s['volts']:.2f}", f"{s['mhz']:.0f}", _num(s["start_s"] / tu[1]),
             f"{s['cycles']:,}", _num(s["energy_j"] / eu[1])) for s in report["dvfs"])))
    return out


def _op_class_table(b: Mapping[str, Any], total: float) -> Any:
    rows = b["op_classes"]
    unit = pick_unit([r["energy_j"] for r in rows.values()], ENERGY_UNITS)
    roof = b["roofline"]["op_classes"]

    def bound(cls: str) -> str:
        r = roof.get(cls)
        return f"{r['bound']} ({100 * r['attained']:.0f} %)" if r else "-"

    return _table(f"per op class (dynamic energy, {unit[0]})",
                  ("op class", "instructions", "unit cycles", unit[0], "share", "bound (% of roof)"), (
                      (cls, f"{r['instructions']:,}", f"{r['unit_cycles']:,}", _num(r["energy_j"] / unit[1]),
                       _pct(r["energy_j"], total), bound(cls)) for cls, r in rows.items()),
                  caption="leakage and DVFS switches belong to no op class; roof: the fewest cycles the work "
                          "allows on its unit")


def _layer_table(layers: list[Mapping[str, Any]], total: float) -> Any:
    eu = pick_unit([r["energy_j"] for r in layers], ENERGY_UNITS)
    tu = pick_unit([r["seconds"] for r in layers], TIME_UNITS)
    return _table(f"per layer ({tu[0]}, {eu[0]})", ("region", "cycles", tu[0], eu[0], "share"), (
        (r["region"], f"{r['cycles']:,}", _num(r["seconds"] / tu[1]), _num(r["energy_j"] / eu[1]),
         _pct(r["energy_j"], total)) for r in layers),
        caption="each region's energy includes its share of leakage and DVFS switching (by time)")


#: Columns of `csv_rows`, in order.
CSV_COLUMNS = ("kind", "name", "instructions", "unit_cycles", "cycles", "seconds", "macs", "sfu_element_passes",
               *(f"read_bytes_{s}" for s in SPACES), *(f"write_bytes_{s}" for s in SPACES), "energy_j",
               *(f"energy_{c}_j" for c in COMPONENTS), "roof_cycles", "attained", "bound")


def csv_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per op class (`kind` op_class), per layer region (`layer`) and the run (`total`): cycles, bytes and
    energy per component (SI units: seconds, joules); the op classes' roofline columns. Needs `breakdown`."""
    b = report["breakdown"]
    roof = b["roofline"]["op_classes"]
    out = []

    def row(kind: str, name: str, r: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": kind, "name": name, "instructions": r.get("instructions"),
                             "unit_cycles": r.get("unit_cycles"), "macs": r.get("macs"),
                             "sfu_element_passes": r.get("sfu_element_passes"), "energy_j": r["energy_j"]}
        for s in SPACES:
            d[f"read_bytes_{s}"] = r["read_bytes"][s]
            d[f"write_bytes_{s}"] = r["write_bytes"][s]
        for c in COMPONENTS:
            d[f"energy_{c}_j"] = r["energy_breakdown_j"].get(c, 0.0)
        return d | dict(extra)

    for cls, r in b["op_classes"].items():
        rf = roof.get(cls, {})
        out.append(row("op_class", cls, r, {"roof_cycles": rf.get("roof_cycles"), "attained": rf.get("attained"),
                                              "bound": rf.get("bound")}))
    for r in b["layers"]:
        out.append(row("layer", r["region"], r, {"cycles": r["cycles"], "seconds": r["seconds"]}))
    traffic = report["traffic_bytes"]
    out.append(row("total", "run", {"instructions": report["instructions"], "unit_cycles": None, "macs": report["macs"],
                                    "sfu_element_passes": report["sfu_element_passes"], "energy_j": report["energy_j"],
                                    "energy_breakdown_j": report["energy_breakdown_j"],
                                    "read_bytes": {s: traffic[s]["read"] for s in SPACES},
                                    "write_bytes": {s: traffic[s]["write"] for s in SPACES}},
                   {"cycles": report["cycles"], "seconds": report["seconds"]}))
    return [{k: d.get(k) for k in CSV_COLUMNS} for d in out]
