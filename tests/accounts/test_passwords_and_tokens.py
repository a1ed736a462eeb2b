"""Password hashes and bearer tokens, without any service."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from accounts.passwords import hash_password, needs_rehash, verify_password
from accounts.tokens import TokenError, issue_token, read_token

SECRET = "a-test-signing-secret-of-enough-length"
NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def test_a_password_verifies_against_its_own_hash_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_two_hashes_of_one_password_differ_by_their_salt() -> None:
    assert hash_password("same password") != hash_password("same password")


@pytest.mark.parametrize("stored", [None, "", "md5$abc", "scrypt$1$2$3$!!$!!", "scrypt$x$8$1$a$b"])
def test_a_missing_or_unreadable_hash_never_verifies(stored: str | None) -> None:
    assert not verify_password("anything", stored)


def test_a_hash_with_weaker_parameters_asks_for_a_rehash() -> None:
    current = hash_password("pw-123456")
    weaker = current.replace("$32768$", "$1024$", 1)
    assert not needs_rehash(current)
    assert needs_rehash(weaker)


def test_a_token_names_its_user_and_expiry() -> None:
    token = issue_token("crew-1", secret=SECRET, now=dt.datetime.now(dt.UTC), ttl_s=60)
    claims = read_token(token, secret=SECRET)
    assert claims.username == "crew-1"
    assert claims.expires_at > dt.datetime.now(dt.UTC)


def test_an_expired_token_is_refused() -> None:
    token = issue_token("crew-1", secret=SECRET, now=NOW - dt.timedelta(days=2), ttl_s=60)
    with pytest.raises(TokenError, match="expired"):
        read_token(token, secret=SECRET)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = issue_token("crew-1", secret="another-secret-" * 3, now=dt.datetime.now(dt.UTC))
    with pytest.raises(TokenError):
        read_token(token, secret=SECRET)


def test_an_unsigned_token_is_refused() -> None:
    claims = {"sub": "admin", "iss": "liftledger", "iat": 0, "exp": 2**40}
    forged = jwt.encode(claims, key="", algorithm="none")
    with pytest.raises(TokenError):
        read_token(forged, secret=SECRET)


def test_a_token_without_a_subject_is_refused() -> None:
    claims = {"iss": "liftledger", "iat": 0, "exp": 2**40}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        read_token(token, secret=SECRET)


def test_a_token_longer_than_thirty_days_is_not_issued() -> None:
    with pytest.raises(ValueError, match="30 days"):
        issue_token("crew-1", secret=SECRET, now=NOW, ttl_s=3650 * 86400)


def test_a_token_signed_for_ten_years_is_refused() -> None:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": "admin", "iss": "liftledger", "iat": int(now.timestamp()),
              "exp": int(now.timestamp()) + 3650 * 86400, "ver": 0}  # fmt: skip
    with pytest.raises(TokenError, match="longer than 30 days"):
        read_token(jwt.encode(claims, SECRET, algorithm="HS256"), secret=SECRET)


@pytest.mark.parametrize("exp", [2**62, 10**30, 1e300, -(2**62)])
def test_a_token_with_an_absurd_expiry_is_a_token_error(exp: float) -> None:
    claims = {"sub": "admin", "iss": "liftledger", "iat": 0, "exp": exp, "ver": 0}
    with pytest.raises(TokenError):
        read_token(jwt.encode(claims, SECRET, algorithm="HS256"), secret=SECRET)


def test_a_token_names_its_version_and_one_without_a_version_is_refused() -> None:
    now = dt.datetime.now(dt.UTC)
    token = issue_token("crew-1", secret=SECRET, now=now, version=7)
    assert read_token(token, secret=SECRET).version == 7
    claims = {"sub": "crew-1", "iss": "liftledger", "iat": int(now.timestamp()),
              "exp": int(now.timestamp()) + 60}  # fmt: skip
    with pytest.raises(TokenError):
        read_token(jwt.encode(claims, SECRET, algorithm="HS256"), secret=SECRET)
