"""Alert notices decoded from ledger entries, without any service."""

from __future__ import annotations

import json

import pytest

from notify.feed import notice_of

EVENT = {
    "site": "nc01", "elevator": "nc01-b01-e1", "event": "opened", "alert_id": 7,
    "type": "trapped_between_floors", "severity": "critical", "salt": "ab", "prev": "00",
}  # fmt: skip


def test_a_notice_is_the_entry_without_its_salt() -> None:
    notice = notice_of(12, json.dumps(EVENT).encode())
    assert notice.seq == 12
    assert "salt" not in notice.body
    assert notice.elevator == "nc01-b01-e1"
    assert json.loads(notice.payload())["seq"] == 12


@pytest.mark.parametrize(
    "canonical",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({k: v for k, v in EVENT.items() if k != "site"}).encode(),
        json.dumps(EVENT | {"severity": "apocalyptic"}).encode(),
        json.dumps(EVENT | {"type": None}).encode(),
        b"\xff\xfe",
    ],
)
def test_an_entry_that_is_not_an_alert_event_is_refused(canonical: bytes) -> None:
    with pytest.raises(ValueError, match=r"entry 5|Expecting|decode|JSON"):
        notice_of(5, canonical)
