"""No lock across a database read or a chain call; nothing blocking on the event loop.

The API's own locks guard only swaps of cached state: a chain that hangs, or a slow registry
read, holds up its own request and no other. Start-up and shutdown wait for threads and
files off the event loop, which may be serving other applications of the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest

from api.app import create_app
from api.context import ApiContext, RegistryHandover
from core.settings import Settings, load_settings
from liftledger.ledger_sources import LEDGER_SOURCES

ADDRESS = "0x" + "ab" * 20


def _context(settings: Settings) -> ApiContext:
    required: dict[str, Any] = {
        item.name: None
        for item in dataclasses.fields(ApiContext)
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
    }
    return ApiContext(**required | {"settings": settings})


def test_the_ledger_view_holds_no_lock_while_it_asks_the_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ledger.chain  # noqa: PLC0415
    import ledger.pin  # noqa: PLC0415
    import ledger.view  # noqa: PLC0415

    asking, answer = threading.Event(), threading.Event()

    class SlowChain:
        def __init__(self, url: str, *, contract_address: str | None = None) -> None:
            self.address = contract_address

        def chain_id(self) -> int:
            asking.set()
            assert answer.wait(10)
            return 31337

    class View:
        def __init__(self, chain: SlowChain, **_: Any) -> None:
            self.address = chain.address

    monkeypatch.setattr(ledger.chain, "ChainClient", SlowChain)
    monkeypatch.setattr(ledger.pin, "pinned_contract", lambda *_: ADDRESS)
    monkeypatch.setattr(ledger.view, "LedgerView", View)
    context = _context(load_settings())
    views: list[Any] = []
    asker = threading.Thread(target=lambda: views.append(context.ledger_view(None)))  # type: ignore[arg-type]
    asker.start()
    try:
        assert asking.wait(10)
        # The chain has not answered yet: the lock is free for everyone else.
        assert context._lock.acquire(blocking=False)
        context._lock.release()
    finally:
        answer.set()
        asker.join(10)
    assert views[0].address.lower() == ADDRESS
    assert context.ledger_view(None) is views[0]  # type: ignore[arg-type]


def test_the_registry_is_read_outside_the_lock_and_an_older_reading_never_lands_last() -> None:
    handover = RegistryHandover()
    handed: list[list[tuple[str, str]]] = []
    first_reading, second_done = threading.Event(), threading.Event()

    def slow_read() -> list[tuple[str, str]]:
        first_reading.set()
        assert second_done.wait(10)  # the second change reads and hands over meanwhile
        return [("s", "e1")]

    def read_while_the_first_reads() -> list[tuple[str, str]]:
        assert handover._lock.acquire(blocking=False)  # nobody holds it across a read
        handover._lock.release()
        return [("s", "e1"), ("s", "e2")]

    first = threading.Thread(target=handover.hand_over, args=(slow_read, handed.append))
    first.start()
    assert first_reading.wait(10)
    handover.hand_over(read_while_the_first_reads, handed.append)
    second_done.set()
    first.join(10)
    assert handed == [[("s", "e1"), ("s", "e2")]]


def test_start_up_and_shutdown_wait_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import api.app  # noqa: PLC0415

    threads: dict[str, str] = {}

    def record(what: str) -> None:
        threads[what] = threading.current_thread().name

    class Pool:
        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def open(self, wait: bool = True) -> None:
            assert not wait

        def close(self) -> None:
            record("pool.close")

    class Broadcaster:
        def __init__(self, conninfo: str) -> None:
            pass

        def start(self) -> None:
            record("broadcaster.start")

        def stop(self) -> None:
            record("broadcaster.stop")

    monkeypatch.setattr(api.app, "check_service_connection", lambda *_, **__: record("check"))
    monkeypatch.setattr(api.app, "ConnectionPool", Pool)
    monkeypatch.setattr(api.app, "AlertBroadcaster", Broadcaster)

    def secret(self: Settings, name: str) -> str:
        record("secret")
        return "s" * 32

    monkeypatch.setattr(Settings, "secret", secret)
    app = create_app(load_settings(), ledger_sources=LEDGER_SOURCES)

    async def serve() -> str:
        async with app.router.lifespan_context(app):
            assert app.state.context.jwt_secret == "s" * 32
        return threading.current_thread().name

    loop_thread = asyncio.run(serve())
    assert set(threads) == {"check", "secret", "broadcaster.start", "broadcaster.stop",
                            "pool.close"}  # fmt: skip
    assert loop_thread not in threads.values()


def test_a_start_up_that_fails_half_way_stops_what_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The JWT secret cannot be read after the pool and the alert reader started: the error
    reaches the server, and neither the pool's threads nor the reader's outlive it."""
    import api.app  # noqa: PLC0415

    stopped: list[str] = []

    class Pool:
        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def open(self, wait: bool = True) -> None:
            pass

        def close(self) -> None:
            stopped.append("pool")

    class Broadcaster:
        def __init__(self, conninfo: str) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            stopped.append("broadcaster")

    read_secret = Settings.secret

    def secret(self: Settings, name: str) -> str:
        if name == "jwt_secret":
            raise RuntimeError("the secret file cannot be read")
        return read_secret(self, name)

    monkeypatch.setattr(api.app, "check_service_connection", lambda *_, **__: None)
    monkeypatch.setattr(api.app, "ConnectionPool", Pool)
    monkeypatch.setattr(api.app, "AlertBroadcaster", Broadcaster)
    monkeypatch.setattr(Settings, "secret", secret)
    app = create_app(load_settings(), ledger_sources=LEDGER_SOURCES)

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            pytest.fail("start-up went on without its secret")

    with pytest.raises(RuntimeError, match="cannot be read"):
        asyncio.run(serve())
    assert sorted(stopped) == ["broadcaster", "pool"]


def test_the_alert_reader_can_be_stopped_before_it_started() -> None:
    from api.stream import AlertBroadcaster  # noqa: PLC0415

    AlertBroadcaster("postgresql://unused").stop()  # no error: nothing to join
