"""The cost formulas of isa/costs.py: the periodic shortcut of the tile pipeline equals tile-by-tile simulation, and
the operand-feed modes charge what they say."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from edgebert.isa.costs import Costs, tile_pipeline
from edgebert.isa.hardware import load_config

CMOD = load_config("edgebert-cmod")


def _naive(tiles: int, tile: Fraction, accumulates: bool, drain: int, wb: int, slots: int, release: int) -> Fraction:
    """The recurrence of tile_pipeline's docstring, one tile at a time, no shortcut."""
    free, starts, handed = Fraction(0), [], Fraction(0)
    for t in range(tiles):
        start = max(free, starts[t - slots] + release) if t >= slots else free
        end = start + tile
        handed = end + drain
        starts.append(max(handed, starts[-1] + wb) if starts else handed)
        free = handed if accumulates else end
    return handed


@settings(max_examples=300, deadline=None)
@given(
    tiles=st.integers(1, 400),
    tile=st.fractions(min_value=0, max_value=200, max_denominator=256),
    accumulates=st.booleans(),
    drain=st.integers(0, 20),
    wb=st.integers(0, 120),
    slots=st.integers(1, 5),
    release_share=st.fractions(0, 1, max_denominator=8),
)
def test_tile_pipeline_shortcut_equals_simulation(tiles, tile, accumulates, drain, wb, slots, release_share) -> None:
    release = int(wb * release_share)
    pu = dataclasses.replace(CMOD.pu, tile_drain_cycles=drain, writeback_cycles=wb, writeback_slots=slots,
                             writeback_release_cycles=release)
    assert tile_pipeline(pu, tiles, tile, accumulates) == _naive(tiles, tile, accumulates, drain, wb, slots, release)


def test_huge_jobs_cost_microseconds_not_minutes() -> None:
    ideal = Costs(load_config("ideal-256mac"))  # 1x1x1 blocks: a million output tiles
    assert ideal.matmul(1023, 4095, 1023, 4, 4) == 6 + -(-1023 * 4095 * 1023 // 256)
    assert Costs(CMOD).matmul(1008, 4080, 1008, 1, 1) == 63 * 63 * (33 * 255 + 8) + 26 + 5


def test_operand_feed_modes() -> None:
    def block_cost(feed: str, a_bytes: int = 1) -> int:
        hw = dataclasses.replace(CMOD, pu=dataclasses.replace(CMOD.pu, operand_feed=feed, launch_cycles=0,
                                                              job_cycles=0, tile_drain_cycles=0))
        return Costs(hw).matmul(16, 32, 16, a_bytes, 1)  # one tile of two blocks

    assert block_cost("serial") == 2 * (16 + 16 + 1)  # load, then compute, then the token
    assert block_cost("serial", a_bytes=4) == 2 * (64 + 16 + 1)  # fp32 a: 1 KiB per block through 16 B/cycle
    assert block_cost("overlapped") == 2 * (16 + 1)  # double-buffered: max(load, compute)
    assert block_cost("overlapped", a_bytes=4) == 2 * (64 + 1)  # load-bound
    assert block_cost("free", a_bytes=4) == 2 * (16 + 1)


def test_peak_mac_rate_is_the_roofline_ceiling() -> None:
    assert Costs(CMOD).peak_macs_per_cycle() == Fraction(4096, 33)  # about 124 MACs per cycle, not 256
    assert Costs(load_config("ideal-256mac")).peak_macs_per_cycle(4, 4) == 256
