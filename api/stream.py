"""The alert stream behind `GET /api/v1/alerts/stream` (Server-Sent Events).

One `AlertBroadcaster` thread per API process listens on the ledger's NOTIFY channel, reads
each new alert notice once (`notify.feed`) and hands it to every connected client's queue;
clients are async generators, so a thousand open streams cost a thousand queues, not a
thousand threads or database connections. A client that falls too far behind is closed and
resumes with `Last-Event-ID` (the ledger seq), replayed from the database.

An unreadable stored entry is left out by the feed (`notify.feed.read_notices`, which logs
and counts it); both the broadcaster and a replay continue from the last entry the feed
read, so one bad entry cannot stop the stream or end a replay early.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from ledger.follow import latest_seq, listen, wait_for_entries
from notify.feed import AlertNotice, NoticeBatch, NoticeFilter, read_notices

log = logging.getLogger(__name__)

WAIT_S: Final = 1.0
RECONNECT_S: Final = 1.0
KEEPALIVE_S: Final = 15.0
RECHECK_S: Final = 15.0  # how often an open stream re-checks its caller's token and sites
QUEUE_LIMIT: Final = 10_000
REPLAY_LIMIT: Final = 10_000
CLOSED: Final = None  # put on a queue to end that client's stream
KEEPALIVE: Final = AlertNotice(-1, {})  # no notice came within KEEPALIVE_S
RECONNECT_MS: Final = 3000  # how long a client waits before it reconnects (the `retry` field)
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


@dataclass(eq=False)
class Subscriber:
    """One connected client."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[AlertNotice | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def offer(self, notice: AlertNotice) -> None:
        """Runs on the event loop: queue a notice, or end a stream that cannot keep up."""
        if self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.queue.put_nowait(CLOSED)
            return
        self.queue.put_nowait(notice)


class AlertBroadcaster:
    """Reads new alert notices and fans them out to the connected clients."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.cursor = -1
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-broadcaster", daemon=True)

    def start(self, ready_timeout_s: float = 10.0) -> None:
        """Start reading; waits until the current ledger position is known."""
        self._thread.start()
        self._ready.wait(ready_timeout_s)

    def stop(self) -> None:
        """Stop reading and end every stream."""
        self._stop.set()
        if self._thread.ident is not None:  # started (start-up may have failed before)
            self._thread.join(timeout=5 * WAIT_S)
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.loop.call_soon_threadsafe(subscriber.queue.put_nowait, CLOSED)

    def subscribe(self) -> Subscriber:
        """Register a client of the running event loop."""
        subscriber = Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a client that went away."""
        with self._lock:
            self._subscribers.discard(subscriber)

    def _publish(self, notices: list[AlertNotice]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            for notice in notices:
                subscriber.loop.call_soon_threadsafe(subscriber.offer, notice)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    listen(conn)
                    if self.cursor < 0:
                        self.cursor = latest_seq(conn)
                    self._ready.set()
                    self._follow(conn)
            except psycopg.Error as exc:
                log.warning("alert stream: database unavailable (%s); retrying", exc)
                self._ready.set()
                self._stop.wait(RECONNECT_S)
            except Exception:  # a bug must not silence every stream for good
                log.exception("alert stream: reading after %s failed; retrying", self.cursor)
                self._ready.set()
                self._stop.wait(RECONNECT_S)

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            batch = read_notices(conn, after_seq=self.cursor, limit=1000, reader="api_stream")
            if batch.last_seq > self.cursor:
                self.cursor = batch.last_seq
                self._publish(batch)
                continue
            wait_for_entries(conn, WAIT_S)


def sse_event(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> str:
    """One message of an event stream (WHATWG HTML §9.2.6): comment lines, then the `id`,
    `event`, `data` and `retry` fields, each `name: value` and LF-terminated, then a blank
    line. Text with line breaks (CR, LF or CRLF) becomes one line per part, which a reader
    joins back with LF; `id` and `event` may hold no line break, and `id` no NUL (a reader
    would ignore the id), so those are refused with ValueError rather than altered.
    `tests/api/test_sse_framing.py` proves this byte for byte against `sse-starlette`."""
    lines: list[str] = []
    if comment is not None:
        lines.extend(f": {part}" for part in _LINE_BREAK.split(comment))
    if id is not None:
        if _LINE_BREAK.search(id) or "\0" in id:
            raise ValueError("an event id may hold no line break and no NUL")
        lines.append(f"id: {id}")
    if event is not None:
        if _LINE_BREAK.search(event):
            raise ValueError("an event type may hold no line break")
        lines.append(f"event: {event}")
    if data is not None:
        lines.extend(f"data: {part}" for part in _LINE_BREAK.split(data))
    if retry is not None:
        if retry < 0:
            raise ValueError("retry is a number of milliseconds, not below 0")
        lines.append(f"retry: {retry}")
    return "".join(f"{line}\n" for line in lines) + "\n"


def sse_frame(notice: AlertNotice) -> str:
    """One SSE event: `id` is the ledger seq, `data` the notice as every channel sends it."""
    return sse_event(notice.payload().decode(), event="alert", id=str(notice.seq))


RETRY: Final = sse_event(retry=RECONNECT_MS)  # the first message of every stream
KEEPALIVE_COMMENT: Final = sse_event(comment="keepalive")


async def _missed(
    replay: Callable[[int, int], Awaitable[list[AlertNotice]]], after_seq: int
) -> AsyncIterator[AlertNotice]:
    """What a resuming client missed, read a batch at a time. A batch that left out
    unreadable entries (`NoticeBatch`) says how far it read, so the replay goes on from
    there rather than stopping short."""
    while True:
        batch = await replay(after_seq, REPLAY_LIMIT)
        for notice in batch:
            yield notice
        if isinstance(batch, NoticeBatch):
            if batch.complete or batch.last_seq <= after_seq:
                return
            after_seq = batch.last_seq
            continue
        if len(batch) < REPLAY_LIMIT:
            return
        after_seq = batch[-1].seq


async def event_stream(
    broadcaster: AlertBroadcaster,
    wanted: NoticeFilter,
    *,
    after_seq: int | None,
    replay: Callable[[int, int], Awaitable[list[AlertNotice]]],
    still_allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """The SSE text of one client: replay after `after_seq`, then live notices; ends when
    `still_allowed` (asked every `RECHECK_S`) says the caller may no longer listen."""
    subscriber = broadcaster.subscribe()
    checked_at = time.monotonic()
    try:
        yield RETRY
        sent = broadcaster.cursor if after_seq is None else after_seq
        if after_seq is not None:
            async for missed in _missed(replay, after_seq):
                sent = missed.seq
                if wanted.matches(missed):
                    yield sse_frame(missed)
        while True:
            try:
                notice = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                notice = KEEPALIVE
            if time.monotonic() - checked_at >= RECHECK_S:
                if not await still_allowed():
                    return
                checked_at = time.monotonic()
            if notice is KEEPALIVE:
                yield KEEPALIVE_COMMENT
                continue
            if notice is None:  # CLOSED
                return
            if notice.seq <= sent:
                continue
            sent = notice.seq
            if wanted.matches(notice):
                yield sse_frame(notice)
    finally:
        broadcaster.unsubscribe(subscriber)
