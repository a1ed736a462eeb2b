"""Webhook signing and sending, without a database."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from notify.webhooks import _valid_url, post, signature, verify_signature


def test_signature_covers_timestamp_and_body_and_expires() -> None:
    body = b'{"seq":1}'
    header = signature("secret", 1_800_000_000, body)
    assert verify_signature("secret", 1_800_000_000, body, header, now=1_800_000_100)
    assert not verify_signature("secret", 1_800_000_001, body, header, now=1_800_000_100)
    assert not verify_signature("secret", 1_800_000_000, body + b" ", header, now=1_800_000_100)
    assert not verify_signature("secret", 1_800_000_000, body, header, now=1_800_000_400)


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://crew.example/hook", True),
        ("http://127.0.0.1:8080/x", True),
        ("http://host:abc/", False),
        ("http://host:99999/", False),
        ("file:///etc/passwd", False),
        ("https:///nohost", False),
    ],
)
def test_only_http_urls_with_a_host_and_a_valid_port_are_accepted(url: str, valid: bool) -> None:
    assert _valid_url(url) is valid


@pytest.fixture
def junk_server() -> Iterator[str]:
    """A TCP server that answers every request with bytes that are not HTTP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            with client:
                client.recv(65536)
                client.sendall(b"garbage\r\n\r\n")
                time.sleep(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    thread.join(2)
    server.close()


def test_a_receiver_answering_junk_is_a_failed_attempt_not_a_crash(junk_server: str) -> None:
    outcome = post(junk_server, b"{}", {"Content-Type": "application/json"})
    assert not outcome.ok
    assert outcome.error
