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
_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
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
    """True when JSON `raw` nests arrays and objects more than `limit` deep.

    No recursion, linear time. When the whole text has no more brackets than `limit`, two
    `bytes.count` calls decide; otherwise one pass over strings and brackets, where brackets
    inside strings do not count (an unterminated string runs to the end).
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    depth = 0
    for match in _TOKEN.finditer(raw):
        token = match[0]
        if token in (b"{", b"["):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"}", b"]"):
            depth -= 1
    return False


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


def report_unreadable(reader: str, seq: int | None, reason: object) -> None:
    """Log one refused row with its seq and a bounded reason, and count it."""
    UNREADABLE_ENTRIES.labels(reader).inc()
    where = f"entry {seq}" if seq is not None else "a row"
    log.error("%s: %s is unreadable and was skipped: %s", reader, where, bounded(str(reason)))
