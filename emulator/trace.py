"""Chrome trace-event JSON (opens in Perfetto / chrome://tracing): one track per unit."""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from edgebert.isa.table import UNITS

if TYPE_CHECKING:
    from edgebert.emulator.machine import Machine


def chrome_trace(m: Machine) -> dict[str, Any]:
    """Trace events of a run made with `trace=True`: complete events ("X") in microseconds."""
    hw, segs = m.hw, m.segments
    starts = [s.start_cycle for s in segs]
    code = m.program.code
    # Timestamps are microseconds of wall time: cycles convert at the operating point of their segment.

    def us(cycle: int) -> float:
        seg = segs[max(0, bisect_right(starts, cycle) - 1)]
        return seg.cycle_to_seconds(hw, cycle) * 1e6

    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"edgebert ({hw.name})"}},
    ]
    for tid, unit in enumerate(UNITS):
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": tid, "args": {"name": unit}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": 0, "tid": tid, "args": {"sort_index": tid}})
    for unit, start, end, pc in m.trace:
        t0 = us(start)
        events.append(
            {
                "name": code[pc].mnemonic,
                "cat": UNITS[unit],
                "ph": "X",
                "pid": 0,
                "tid": unit,
                "ts": t0,
                "dur": us(end) - t0 if end > start else 0.0,
                "args": {"pc": pc, "start_cycle": start, "cycles": end - start},
            }
        )
    ctl = UNITS.index("ctl")
    for seg in segs[1:]:
        point = hw.dvfs.points[seg.point]
        events.append(
            {
                "name": f"dvfs switch -> {point.volts} V, {point.mhz} MHz",
                "cat": "dvfs",
                "ph": "X",
                "pid": 0,
                "tid": ctl,
                "ts": seg.start_s * 1e6,
                "dur": seg.switch_s * 1e6,
                "args": {"point": seg.point},
            }
        )
    other = {"hw": hw.name, "cycles": m.cycles, "truncated": m.trace_truncated}  # truncated: only the first events
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": other}
