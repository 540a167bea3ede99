"""WeightSchedule: a loss weight as a number or piecewise-linear [iteration, weight] breakpoints."""

from __future__ import annotations

import pytest

from groupvit.errors import InputError
from groupvit.loss_schedule import WeightSchedule


def test_constant_and_piecewise_linear_values() -> None:
    assert [WeightSchedule(0.5)(i) for i in (0, 10, 10_000)] == [0.5, 0.5, 0.5]
    assert WeightSchedule(0.0).always_off and not WeightSchedule(0.3).always_off
    ramp = WeightSchedule([[0, 0.3], [900, 1.0]])
    assert ramp(0) == pytest.approx(0.3)
    assert ramp(450) == pytest.approx(0.65)
    assert ramp(900) == pytest.approx(1.0) and ramp(5000) == pytest.approx(1.0)
    # held before the first breakpoint; a step is two breakpoints one iteration apart
    step = WeightSchedule(((100, 0.0), (101, 2.0), (300, 1.0)))
    assert [step(i) for i in (0, 100, 101)] == [0.0, 0.0, 2.0]
    assert step(200) == pytest.approx(2.0 - 99 / 199)
    assert WeightSchedule([[0, 0.0], [10, 0.0]]).always_off


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "must be a number or a list of \\[iteration, weight\\] pairs"),
        ([[0, 0.3, 1]], "must be a number or a list"),
        ([[0.5, 0.3]], "must be a number or a list"),
        ([[-1, 0.3]], "must be a number or a list"),
        ("0.3", "must be a number or a list"),
        ([[0, 0.3], [0, 1.0]], "the iterations must increase strictly"),
        ([[0, -0.1]], "must be >= 0 everywhere"),
        (-1.0, "must be >= 0 everywhere"),
    ],
)
def test_malformed_schedules_name_the_field(value: object, message: str) -> None:
    with pytest.raises(InputError, match="affinity_group_weight" + ".*" + message):
        WeightSchedule(value, "affinity_group_weight")
