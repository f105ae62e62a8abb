"""The step's phase timers: exclusive time per name, nested blocks and calls, counts."""
import time

import pytest

from pvmpi.network.timers import Timers


def _spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_nested_block_counts_once_and_only_in_itself():
    timers = Timers()
    with timers.time("outer"):
        _spin(0.002)
        with timers.time("inner"):
            _spin(0.004)
        timers.call("call", _spin, 0.003)
    assert timers.counts == {"outer": 1, "inner": 1, "call": 1}
    assert 0.004 <= timers.totals["inner"] < 0.0045 + 0.05
    assert 0.003 <= timers.totals["call"] < 0.0035 + 0.05
    # the outer block's own time leaves out what its children took
    assert 0.002 <= timers.totals["outer"] < 0.0025 + 0.05
    assert timers.by_phase() == pytest.approx({"outer": timers.totals["outer"], "inner": timers.totals["inner"],
                                               "call": timers.totals["call"]})


def test_a_block_inside_a_block_of_the_same_name_keeps_both_starts():
    timers = Timers()
    with timers.time("probes"):
        _spin(0.001)
        with timers.time("probes"):
            _spin(0.002)
    assert timers.counts["probes"] == 2
    assert 0.003 <= timers.totals["probes"] < 0.0035 + 0.05
    assert timers._children == []


def test_a_block_that_raises_is_still_timed_and_closes_its_level():
    timers = Timers()
    with pytest.raises(ValueError), timers.time("io:V1"):
        with timers.time("halo:V1"):
            raise ValueError("disk full")
    assert timers.counts == {"io:V1": 1, "halo:V1": 1}
    assert timers._children == []
    timers.reset()
    assert not timers.totals and not timers.counts
