"""When simulated devices retry their connections (pure, no broker)."""

from __future__ import annotations

import pytest

from simulators.connect_schedule import (
    RECONNECT_MAX_DELAY_S,
    RECONNECT_MIN_DELAY_S,
    ConnectSchedule,
    retry_delay_s,
)


def test_devices_come_due_earliest_first_and_only_once_due() -> None:
    schedule: ConnectSchedule[str] = ConnectSchedule()
    schedule.schedule("b", 2.0)
    schedule.schedule("a", 1.0)
    assert schedule.earliest_s() == 1.0
    assert schedule.pop_due(0.5) is None
    assert schedule.pop_due(2.0) == "a"
    assert schedule.pop_due(2.0) == "b"
    assert schedule.pop_due(2.0) is None
    assert not schedule


def test_a_new_schedule_supersedes_the_devices_earlier_one() -> None:
    schedule: ConnectSchedule[str] = ConnectSchedule()
    schedule.schedule("a", 1.0)
    schedule.schedule("a", 3.0)
    assert schedule.pop_due(2.0) is None
    assert schedule.pop_due(3.0) == "a"
    assert schedule.pop_due(3.0) is None


def test_clear_drops_every_entry_and_later_schedules_count() -> None:
    schedule: ConnectSchedule[str] = ConnectSchedule()
    schedule.schedule("a", 1.0)
    schedule.clear()
    assert not schedule
    schedule.schedule("a", 1.0)
    assert schedule.pop_due(1.0) == "a"


@pytest.mark.parametrize("index", [0, 1, 7, 1000])
def test_retries_back_off_to_a_ceiling_and_never_below_half_the_base(index: int) -> None:
    delays = [retry_delay_s(failed, index) for failed in range(40)]
    assert delays == sorted(delays)
    assert RECONNECT_MIN_DELAY_S / 2 <= delays[0] <= RECONNECT_MIN_DELAY_S
    assert RECONNECT_MAX_DELAY_S / 2 <= delays[-1] <= RECONNECT_MAX_DELAY_S
    assert retry_delay_s(10_000, index) == delays[-1]


def test_neighbouring_devices_retry_at_different_times() -> None:
    delays = {retry_delay_s(3, index) for index in range(100)}
    assert len(delays) == 100
