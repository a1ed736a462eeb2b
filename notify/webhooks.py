"""Webhook subscriptions and their delivery log (at-least-once, signed, retried).

Each alert notice a subscription selects becomes one `webhook_deliveries` row, enqueued in the
same transaction that advances the `webhooks` cursor, so nothing is skipped or enqueued twice.
A delivery is an HTTP POST of the notice JSON with:

- `X-LiftLedger-Timestamp`: Unix seconds at sending;
- `X-LiftLedger-Signature`: `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + body), so a
  receiver can check origin and freshness (reject old timestamps to stop replays);
- `Idempotency-Key`: `alert-event-{id}`, the same on every retry, so a receiver can drop repeats;
- `X-LiftLedger-Event` and `X-LiftLedger-Seq`.

A 2xx answer marks it delivered; anything else (or no answer) is retried with exponential
back-off plus jitter, up to `MAX_ATTEMPTS`, then marked failed with the last status and error.
No POST runs inside a database transaction: a delivery is claimed and leased in one short
transaction and its outcome recorded in another, so a slow endpoint holds no row lock.

Stored rows are read as possibly hostile: a notice whose alert event does not exist is not
enqueued, and a delivery whose ledger entry is unreadable is marked failed at once (retrying
cannot mend it); both are logged with the seq, and the other deliveries go on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from core.errors import LiftLedgerError
from core.faults import Severity
from core.stored_json import bounded, report_unreadable
from notify.feed import AlertNotice, NoticeFilter, notice_of

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 10
BACKOFF_BASE_S: Final = 2.0
BACKOFF_MAX_S: Final = 600.0
REQUEST_TIMEOUT_S: Final = 5.0
# How long a claimed delivery is withheld from other notifiers while its POST runs; far
# beyond `REQUEST_TIMEOUT_S`, so only a notifier that died mid-POST lets it lapse.
LEASE_S: Final = 60.0
USER_AGENT: Final = "LiftLedger-Webhook/1"


_DUE: Final = (
    "SELECT d.id, d.attempts, d.ledger_seq, d.alert_event_id, s.url, s.secret, e.canonical "
    "FROM webhook_deliveries d "
    "JOIN webhook_subscriptions s ON s.id = d.subscription_id "
    "JOIN ledger_entries e ON e.seq = d.ledger_seq "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.active "
    "ORDER BY d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
)
_LEASE: Final = (
    "UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => %s) "
    "WHERE id = %s"
)


class WebhookError(LiftLedgerError):
    """A webhook subscription that cannot be created or found."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook endpoint and what it wants."""

    id: int
    name: str
    url: str
    secret: str
    wanted: NoticeFilter


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one HTTP attempt returned."""

    ok: bool
    status_code: int | None
    error: str | None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-LiftLedger-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: int, body: bytes, header: str, *, now: float, tolerance_s: float = 300
) -> bool:
    """What a receiver does: check the signature and that the timestamp is fresh."""
    fresh = abs(now - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), header)


def backoff_s(attempts: int, *, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempts + 1`: doubling from 2 s, capped at 10 min, ±20 % jitter."""
    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    jitter = (rng or random.Random()).random()  # noqa: S311 - spreading retries, not crypto
    return float(delay * (0.8 + 0.4 * jitter))


def _valid_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def add_subscription(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    url: str,
    sites: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
    events: Sequence[str] | None = None,
    min_severity: Severity = Severity.INFO,
    secret: str | None = None,
) -> Subscription:
    """Register a webhook; returns it with its signing secret (generated when not given)."""
    if not _valid_url(url):
        raise WebhookError(f"webhook URL must be http(s)://host[:port]/…, got {url!r}")
    secret = secret or secrets.token_urlsafe(32)
    with conn.cursor() as cur:
        row = cur.execute(
            "INSERT INTO webhook_subscriptions (name, url, secret, sites, types, kinds, "
            "min_severity) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING "
            "RETURNING id",
            (name, url, secret, sites, types, events, min_severity.value),
        ).fetchone()
    if row is None:
        raise WebhookError(f"a webhook named {name!r} already exists")
    wanted = NoticeFilter(sites, types, events, min_severity)
    return Subscription(int(row[0]), name, url, secret, wanted)


def remove_subscription(conn: psycopg.Connection[Any], name: str) -> None:
    """Stop sending to a webhook (its delivery log is kept)."""
    with conn.cursor() as cur:
        cur.execute("UPDATE webhook_subscriptions SET active = false WHERE name = %s", (name,))
        if cur.rowcount == 0:
            raise WebhookError(f"no webhook named {name!r}")


def active_subscriptions(conn: psycopg.Connection[Any]) -> list[Subscription]:
    """Every active webhook."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, name, url, secret, sites, types, kinds, min_severity "
            "FROM webhook_subscriptions WHERE active ORDER BY id"
        ).fetchall()
    return [
        Subscription(
            id=row["id"],
            name=row["name"],
            url=row["url"],
            secret=row["secret"],
            wanted=NoticeFilter(
                row["sites"], row["types"], row["kinds"], Severity(row["min_severity"])
            ),
        )
        for row in rows
    ]


def enqueue(
    conn: psycopg.Connection[Any], notices: Sequence[AlertNotice], subs: Sequence[Subscription]
) -> int:
    """Owe each notice to every subscription that wants it; returns deliveries created.

    A notice without an alert event that exists is logged and left out (a delivery must
    reference its event), so it cannot fail the transaction that moves the cursor."""
    wanted = [(sub, notice) for notice in notices for sub in subs if sub.wanted.matches(notice)]
    if not wanted:
        return 0
    ids = {notice.body.get("alert_event_id") for _, notice in wanted}
    with conn.cursor() as cur:
        existing = {
            int(row[0])
            for row in cur.execute(
                "SELECT id FROM alert_events WHERE id = ANY(%s)",
                ([event_id for event_id in ids if isinstance(event_id, int)],),
            )
        }
    rows = []
    for notice in {notice.seq: notice for _, notice in wanted}.values():
        if notice.body.get("alert_event_id") not in existing:
            report_unreadable("webhooks", notice.seq, "it names no alert event that exists")
    for sub, notice in wanted:
        event_id = notice.body.get("alert_event_id")
        if event_id in existing:
            rows.append((sub.id, event_id, notice.seq))
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO webhook_deliveries (subscription_id, alert_event_id, ledger_seq) "
            "VALUES (%s, %s, %s) ON CONFLICT (subscription_id, alert_event_id) DO NOTHING",
            rows,
        )
    return len(rows)


def post(url: str, body: bytes, headers: dict[str, str]) -> DeliveryOutcome:
    """One HTTP POST; any 2xx is success."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked at registration
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310
            return DeliveryOutcome(200 <= response.status < 300, response.status, None)
    except urllib.error.HTTPError as exc:
        return DeliveryOutcome(False, exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return DeliveryOutcome(False, None, str(reason))
    except Exception as exc:  # a receiver answering junk is a failed attempt, not a crash
        return DeliveryOutcome(False, None, f"{type(exc).__name__}: {exc}")


Sender = Callable[[str, bytes, dict[str, str]], DeliveryOutcome]


def deliver_due(
    conn: psycopg.Connection[Any],
    *,
    send: Sender = post,
    limit: int = 100,
    clock: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
) -> int:
    """Attempt every delivery that is due, one at a time, until `stop` is set; returns how
    many were attempted. `conn` must not be inside a transaction.

    Each delivery is claimed in a short transaction of its own: the row is taken with
    `FOR UPDATE SKIP LOCKED`, so two notifiers never claim the same one, and leased (not due
    again for `LEASE_S`), then committed. The POST runs outside any transaction, holding no
    lock, and its outcome is committed in another short transaction. A notifier that dies
    mid-POST leaves the lease to expire and the delivery is attempted again (at-least-once).
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("webhook deliveries are sent outside any transaction")
    attempted = 0
    while attempted < limit and not (stop is not None and stop.is_set()):
        row = _claim(conn)
        if row is None:
            return attempted
        try:
            notice = notice_of(row["ledger_seq"], bytes(row["canonical"]))
        except Exception as exc:  # retrying cannot mend a stored entry: fail it now
            report_unreadable("webhooks", row["ledger_seq"], exc)
            outcome = DeliveryOutcome(False, None, bounded(f"unreadable ledger entry: {exc}"))
            attempts = MAX_ATTEMPTS
        else:
            outcome = _attempt(row, notice, send, clock)
            attempts = row["attempts"] + 1
        with conn.transaction(), conn.cursor() as cur:
            _record(cur, row["id"], attempts, outcome)
        attempted += 1
    return attempted


def _claim(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """Take the next due delivery and lease it, in one committed transaction."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_DUE).fetchone()
        if row is not None:
            cur.execute(_LEASE, (LEASE_S, row["id"]))
    return row


def _attempt(
    row: dict[str, Any], notice: AlertNotice, send: Sender, clock: Callable[[], float]
) -> DeliveryOutcome:
    """One signed POST of `notice`; a failure to build it is a failed attempt."""
    try:
        body = notice.payload()
        stamp = int(clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-LiftLedger-Timestamp": str(stamp),
            "X-LiftLedger-Signature": signature(row["secret"], stamp, body),
            "X-LiftLedger-Event": notice.event,
            "X-LiftLedger-Seq": str(notice.seq),
            "Idempotency-Key": f"alert-event-{row['alert_event_id']}",
        }
    except Exception as exc:  # e.g. a stored secret that is not valid text
        log.error("webhook delivery %d cannot be built: %s", row["id"], bounded(str(exc)))
        return DeliveryOutcome(False, None, bounded(f"{type(exc).__name__}: {exc}"))
    return send(row["url"], body, headers)


def _record(
    cur: psycopg.Cursor[Any], delivery_id: int, attempts: int, outcome: DeliveryOutcome
) -> None:
    if outcome.ok:
        cur.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = %s, "
            "delivered_at = now(), last_status_code = %s, last_error = NULL WHERE id = %s",
            (attempts, outcome.status_code, delivery_id),
        )
        return
    status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
    # Only a pending row: a failure never undoes what another notifier recorded after this
    # one's lease ran out.
    retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=backoff_s(attempts))
    cur.execute(
        "UPDATE webhook_deliveries SET status = %s, attempts = %s, next_attempt_at = %s, "
        "last_status_code = %s, last_error = %s WHERE id = %s AND status = 'pending'",
        (status, attempts, retry_at, outcome.status_code, outcome.error, delivery_id),
    )
    if status == "failed":
        log.warning("webhook delivery %d failed after %d attempts: %s", delivery_id, attempts,
                    outcome.error)  # fmt: skip
