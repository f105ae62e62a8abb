"""The guard's verdict on one rank: one look when every sum is finite, the exact culprit when not."""
from types import SimpleNamespace

import numpy as np
import pytest

from pvmpi import PvmpiError
from pvmpi.network.checkpointing import CHECKPOINT_NOW, CLOCK_DUE, STOP, Signals
from pvmpi.network.guard import NumericGuard


class _Layer:
    def __init__(self, name, sums):
        self.name, self.sums = name, np.asarray(sums, np.float64)
        self.tile = SimpleNamespace(kb0=0)
        self.has_v = False

    def activity_sums(self):
        return self.sums


def _guard(*layers):
    column = SimpleNamespace(model=SimpleNamespace(column={"errorOnNotANumber": False, "nbatch": 2}),
                             layers={la.name: la for la in layers}, comms=SimpleNamespace(size=1),
                             t=3.0, step=3)
    return NumericGuard(column)


def test_finite_sums_whose_total_overflows_pass():
    layers = [_Layer("A", [1e308, 1.0]), _Layer("B", [1e308, -1.0])]  # each finite; their total is not
    with np.errstate(over="ignore"):  # as the column steps
        _guard(*layers).check(layers)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_sum_names_its_layer_and_batch_element(bad):
    layers = [_Layer("A", [1.0, 2.0]), _Layer("B", [3.0, bad])]
    with pytest.raises(PvmpiError, match=r"activity A is not finite .* \(step 3\), batch element 1") as e:
        _guard(*layers).check(layers)
    assert e.value.group == "B"


def test_flags_are_or_ed_until_taken():
    layers = [_Layer("A", [1.0, 2.0])]
    guard = _guard(*layers)
    guard.check(layers, STOP)
    guard.check(layers, CHECKPOINT_NOW)
    assert guard.take_flags() == STOP | CHECKPOINT_NOW
    assert guard.take_flags() == 0


def test_signals_are_taken_once_with_the_clock():
    signals = Signals()
    signals._set(CHECKPOINT_NOW)
    assert signals.take(clock_due=True) == CHECKPOINT_NOW | CLOCK_DUE
    assert signals.take(clock_due=False) == 0
