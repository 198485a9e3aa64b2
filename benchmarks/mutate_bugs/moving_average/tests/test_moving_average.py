import pytest
from scripts.moving_average import MovingAverage, smooth, sustained_above


def test_first_value_is_its_own_average():
    assert MovingAverage(3).add(12.0) == 12.0


def test_average_before_the_window_fills():
    assert smooth([10.0, 20.0], 3) == [10.0, 15.0]


def test_empty_average_is_zero():
    assert MovingAverage(3).value == 0.0


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        MovingAverage(0)


def test_window_slides():
    assert smooth([10.0, 20.0, 30.0, 40.0], 2) == [10.0, 15.0, 25.0, 35.0]


def test_short_spike_is_not_sustained():
    assert not sustained_above([10.0, 10.0, 90.0, 10.0, 10.0], 3, 50.0)
