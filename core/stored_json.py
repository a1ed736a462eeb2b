"""JSON read back from the database, decoded as if it were hostile.

A stored row can be wrong: a bug or a database insider may have written it. The readers of
the ledger (the notifier, the API's stream and audit views, the verifier) decode entries and
source rows with `decode_object`, which refuses, with `StoredJsonError`, anything that is not
a small JSON object of plain values:

- more than `MAX_BYTES` bytes, or not UTF-8;
- nested more than `MAX_DEPTH` levels. This is checked by a scan without recursion *before*
  decoding: C decoders and encoders (`json`, msgspec, pydantic-core) recurse once per level,
  and `py_ecc` (imported with web3) raises Python's recursion limit to 100,000, so a deep
  document would overflow the C stack and kill the process instead of raising;
- not JSON, or not an object; numbers that do not fit a float or that have more digits than
  an integer may; a lone UTF-16 surrogate (it cannot be encoded again).

`report_unreadable` logs one unreadable row (its seq and a bounded reason) and counts it in
`UNREADABLE_ENTRIES`, which a process with metrics registers in its registry.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

import msgspec
from prometheus_client import Counter

log = logging.getLogger(__name__)

# Entries nest three levels (envelope, details, a value); the API accepts flat details.
MAX_DEPTH: Final = 32
MAX_BYTES: Final = 1 << 20
REASON_CHARS: Final = 200
# A JSON string, unrolled so that matching stays linear; unterminated, it runs to the end.
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_A_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_CURLY_AS_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
_decode: Final = msgspec.json.Decoder(dict[str, Any]).decode

UNREADABLE_ENTRIES: Final = Counter(
    "liftledger_unreadable_entries",
    "stored ledger entries (or their source rows) a reader refused and skipped",
    ["reader"],
    registry=None,
)


class StoredJsonError(ValueError):
    """A stored JSON value that a reader refuses to decode."""


def depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when JSON `raw` nests arrays and objects more than `limit` deep (or leaves some
    open: unbalanced brackets count as too deep, and such JSON is refused either way).

    No recursion, and no Python loop per byte: strings are cut out by one regular expression,
    everything but brackets is deleted by `bytes.translate`, and each of at most `limit`
    rounds removes the innermost pairs; whatever bracket is left was nested deeper. About
    10 ms for a MiB of brackets; two `bytes.count` calls when there are no more brackets in
    the whole text than `limit`.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    brackets = _STRING.sub(b"", raw).translate(_CURLY_AS_SQUARE, _NOT_A_BRACKET)
    for _ in range(limit):
        inner_removed = brackets.replace(b"[]", b"")
        if len(inner_removed) == len(brackets):
            break
        brackets = inner_removed
    return b"[" in brackets


def decode_object(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Decode stored JSON that must be an object; `StoredJsonError` says why it is refused."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > MAX_BYTES:
        raise StoredJsonError(f"{len(data)} bytes, more than {MAX_BYTES}")
    if depth_exceeds(data, max_depth):
        raise StoredJsonError(f"nested more than {max_depth} levels")
    try:
        return _decode(data)
    except msgspec.ValidationError as exc:
        raise StoredJsonError(f"not a JSON object of plain values: {bounded(str(exc))}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise StoredJsonError(f"not JSON: {bounded(str(exc))}") from exc


def bounded(text: str, limit: int = REASON_CHARS) -> str:
    """`text` cut to `limit` characters, with non-printable characters escaped, for a log."""
    shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def bounded_json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """`json.loads` for psycopg's json/jsonb columns (`psycopg.types.json.set_json_loads`),
    refusing with `StoredJsonError` what is nested deeper than `MAX_DEPTH` before decoding: in
    a process whose recursion limit web3 raised, a deep stored value would otherwise overflow
    the C stack. A refused column fails its query, not the process."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if depth_exceeds(raw, MAX_DEPTH):
        raise StoredJsonError(f"nested more than {MAX_DEPTH} levels")
    return json.loads(raw)


def report_unreadable(reader: str, seq: int | None, reason: object) -> None:
    """Log one refused row with its seq and a bounded reason, and count it."""
    UNREADABLE_ENTRIES.labels(reader).inc()
    where = f"entry {seq}" if seq is not None else "a row"
    log.error("%s: %s is unreadable and was skipped: %s", reader, where, bounded(str(reason)))
