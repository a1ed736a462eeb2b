from __future__ import annotations

import pytest

from core.credentials import (
    COLLECTOR_USERNAME,
    PLATFORM_USERNAME,
    device_credentials,
    service_credentials,
)
from core.protocol import is_valid_id


def test_device_password_is_stable_and_distinct_per_elevator() -> None:
    first = device_credentials("secret", "nc01-b01-e1")
    assert first == device_credentials("secret", "nc01-b01-e1")
    assert first.password != device_credentials("secret", "nc01-b02-e1").password
    assert first.password != device_credentials("other", "nc01-b01-e1").password
    assert first.username == "nc01-b01-e1"
    assert len(first.password) == 32


def test_service_usernames_can_never_be_elevator_ids() -> None:
    for name in (COLLECTOR_USERNAME, PLATFORM_USERNAME):
        assert not is_valid_id(name)
        assert service_credentials("secret", name).username == name


def test_unknown_service_account_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown service account"):
        service_credentials("secret", "svc.other")
