"""The password policy, without any service."""

from __future__ import annotations

import pytest

from accounts.password_policy import common_passwords, password_problem


@pytest.mark.parametrize(
    "password",
    ["password123", "Password123!", "p@ssw0rd12", "Summer2024!", "qwertyuiop", "letmein123",
     "1234567890", "iloveyou!!", "liftledger1", "correct horse battery staple"],
)  # fmt: skip
def test_a_common_password_is_refused(password: str) -> None:
    assert password_problem(password) is not None


@pytest.mark.parametrize("password", ["", "short", "abc12345!"])
def test_a_password_under_ten_characters_is_refused(password: str) -> None:
    assert password_problem(password) == "a password needs at least 10 characters"


def test_a_password_of_few_different_characters_is_refused() -> None:
    assert "different characters" in (password_problem("abababababab") or "")


def test_a_password_containing_the_username_is_refused() -> None:
    assert password_problem("zhang.wei-2026!", username="zhang.wei") is not None


@pytest.mark.parametrize("password", ["correct horse", "rescue-in-30", "Tr0ub4dor&3x-lift"])
def test_an_uncommon_password_of_enough_length_is_accepted(password: str) -> None:
    assert password_problem(password, username="crew-7") is None


def test_the_bundled_list_holds_hundreds_of_lower_case_entries() -> None:
    passwords = common_passwords()
    assert len(passwords) >= 300
    assert all(entry == entry.lower() for entry in passwords)
