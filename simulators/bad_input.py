"""Deliberately bad device messages, for tests of validation and dead-lettering (SPEC §3).

Each kind breaks one rule: malformed JSON, wrong types, out-of-range values, an unknown
elevator, a topic outside the scheme, a payload over the size limit, a timestamp far in the
future, a duplicate of a message already sent, or random bytes. A device identity can only
publish to its own topics on a broker with the platform's ACL, so `unknown_elevator` and
`bad_topic` reach a collector only through brokers without per-device ACLs (or replay).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from core.protocol import MAX_PAYLOAD_BYTES, PROTOCOL_VERSION, topic_for

BAD_KINDS: Final = (
    "malformed_json",
    "wrong_type",
    "out_of_range",
    "unknown_elevator",
    "bad_topic",
    "oversized",
    "future_timestamp",
    "duplicate",
    "random_bytes",
)
# Kinds a device can send through the platform's broker (its own topics only).
OWN_TOPIC_KINDS: Final = tuple(k for k in BAD_KINDS if k not in {"unknown_elevator", "bad_topic"})


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A message that must not become a new row: dead-lettered, or (a duplicate) ignored."""

    kind: str
    topic: str
    payload: bytes


def _sample(boot: str, seq: int, ts: str) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "boot": boot,
        "seq": seq,
        "ts": ts,
        "floor": 3,
        "pos_m": 6.0,
        "speed_mps": 0.0,
        "dir": "idle",
        "door": "closed",
        "door_zone": True,
        "door_lock": True,
        "safety_chain": True,
        "power": "mains",
        "load_kg": 0.0,
        "occupied": False,
        "mode": "normal",
    }


def bad_message(
    kind: str,
    *,
    site: str,
    elevator: str,
    now: dt.datetime,
    rng: random.Random,
    duplicate_of: bytes | None = None,
) -> BadMessage:
    """One bad message of `kind` as `elevator` at `site` would send it at `now`."""
    topic = topic_for(site, elevator, "telemetry")
    ts = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    boot = "bad-input"
    body = _sample(boot, rng.randrange(1, 2**40), ts)
    encode = msgspec.json.encode
    if kind == "malformed_json":
        payload = encode(body)[: rng.randrange(1, 40)]
    elif kind == "wrong_type":
        field = rng.choice(["floor", "speed_mps", "door_zone", "seq"])
        body[field] = rng.choice(["three", [1], {"x": 1}])
        payload = encode(body)
    elif kind == "out_of_range":
        field, value = rng.choice(
            [("speed_mps", -1.0), ("floor", 10_000), ("dir", "sideways"), ("v", 99)]
        )
        body[field] = value
        payload = encode(body)
    elif kind == "unknown_elevator":
        topic = topic_for(site, f"unknown-{rng.randrange(10**6)}", "telemetry")
        payload = encode(body)
    elif kind == "bad_topic":
        topic = rng.choice(["lift/v2/x/y/telemetry", f"lift/v1/{site}/{elevator}/junk", "other"])
        payload = encode(body)
    elif kind == "oversized":
        body["padding"] = "x" * (MAX_PAYLOAD_BYTES + 1)
        payload = encode(body)
    elif kind == "future_timestamp":
        later = now + dt.timedelta(minutes=rng.randrange(6, 600))
        body["ts"] = later.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload = encode(body)
    elif kind == "duplicate":
        payload = duplicate_of if duplicate_of is not None else encode(body)
    elif kind == "random_bytes":
        payload = rng.randbytes(rng.randrange(1, 200))
    else:
        raise ValueError(f"unknown bad-input kind {kind!r}")
    return BadMessage(kind, topic, payload)
