"""The alert stream's own SSE framing, proved against `sse-starlette` and a reader.

`api.stream.sse_event` frames by hand (a dozen lines, no dependency at run time). These
properties hold it to `sse_starlette.ServerSentEvent.encode()` byte for byte with LF line
ends, and to a reader written here from the WHATWG rules (HTML §9.2.6, "Interpreting an
event stream"), which must read back exactly what was framed, and read the library's
default CRLF framing the same (the standard allows both line ends).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sse_starlette import ServerSentEvent

from api.stream import KEEPALIVE_COMMENT, RECONNECT_MS, RETRY, sse_event, sse_frame
from notify.feed import AlertNotice

_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class Reading:
    """What an EventSource makes of a stream: the events it dispatches, the last event id
    and the reconnection time."""

    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, data, last id)
    last_event_id: str = ""
    retry_ms: int | None = None


def read_stream(stream: bytes) -> Reading:
    """A reader per the WHATWG rules: UTF-8 with one leading BOM dropped; lines end at CRLF,
    LF or CR; a blank line dispatches; `:` starts a comment; one space after the colon is
    dropped; an `id` with NUL is ignored, a `retry` of anything but ASCII digits too; data
    without a final blank line is discarded."""
    text = stream.decode("utf-8").removeprefix("\ufeff")
    reading = Reading()
    data, event_type, id_buffer = "", "", ""
    lines = _BREAK.split(text)
    for line in lines[:-1]:  # the last piece has no line end: an incomplete line
        if line == "":
            reading.last_event_id = id_buffer
            if data:
                reading.events.append((event_type or "message", data.removesuffix("\n"), id_buffer))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            reading.retry_ms = int(value)
    return reading


def _library(
    data: str | None, event: str | None, id_: str | None, retry: int | None, comment: str | None,
    *, sep: str | None = "\n",
) -> bytes:  # fmt: skip
    return ServerSentEvent(
        data, event=event, id=id_, retry=retry, comment=comment, sep=sep
    ).encode()


# Any text (surrogates aside: they cannot be sent as UTF-8), line breaks of every kind.
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from("\r\n:"))
one_line = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n") | st.just(":")
)
ids = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0") | st.just(":")
)
line_breaks = st.sampled_from(["\r", "\n", "\r\n"])
with_a_break = st.tuples(one_line, line_breaks, texts).map("".join)
unreadable_ids = st.tuples(ids, line_breaks | st.just("\0"), texts).map("".join)


@given(
    data=st.none() | texts, event=st.none() | one_line, id_=st.none() | ids,
    retry=st.none() | st.integers(0, 10**12), comment=st.none() | texts,
)  # fmt: skip
def test_our_framing_is_sse_starlettes_byte_for_byte(
    data: str | None, event: str | None, id_: str | None, retry: int | None, comment: str | None
) -> None:
    ours = sse_event(data, event=event, id=id_, retry=retry, comment=comment).encode()
    assert ours == _library(data, event, id_, retry, comment)


@given(
    data=st.none() | texts, event=st.none() | one_line, id_=st.none() | ids,
    retry=st.none() | st.integers(0, 10**12), comment=st.none() | texts,
)  # fmt: skip
def test_a_reader_gets_back_what_was_framed_and_reads_crlf_framing_the_same(
    data: str | None, event: str | None, id_: str | None, retry: int | None, comment: str | None
) -> None:
    reading = read_stream(
        sse_event(data, event=event, id=id_, retry=retry, comment=comment).encode()
    )
    expected_id = id_ if id_ is not None else ""
    if data is None:
        assert reading.events == []
    else:
        # A reader cannot tell CR, LF and CRLF apart inside data: each becomes LF.
        assert reading.events == [(event or "message", _BREAK.sub("\n", data), expected_id)]
    assert reading.last_event_id == expected_id
    assert reading.retry_ms == retry
    assert read_stream(_library(data, event, id_, retry, comment, sep=None)) == reading


@given(id_=unreadable_ids)
def test_an_id_a_reader_would_not_get_back_is_refused_rather_than_altered(id_: str) -> None:
    with pytest.raises(ValueError, match="event id"):
        sse_event("x", id=id_)
    # The library sends it altered (breaks dropped) or as a reader ignores it (NUL).
    assert read_stream(_library("x", None, id_, None, None)).last_event_id != id_


@given(event=with_a_break)
def test_an_event_type_with_a_line_break_is_refused(event: str) -> None:
    with pytest.raises(ValueError, match="event type"):
        sse_event("x", event=event)


def test_a_negative_retry_is_refused() -> None:
    with pytest.raises(ValueError, match="retry"):
        sse_event(retry=-1)


notice_bodies = st.dictionaries(
    st.text(max_size=10), st.none() | st.booleans() | st.integers() | st.text(), max_size=5
)


@given(seq=st.integers(0, 2**63 - 1), body=notice_bodies)
def test_the_streams_messages_are_sse_starlettes(seq: int, body: dict[str, object]) -> None:
    notice = AlertNotice(seq, body)
    framed = sse_frame(notice).encode()
    assert framed == _library(notice.payload().decode(), "alert", str(seq), None, None)
    (event,) = read_stream(framed).events
    assert event[0] == "alert"
    assert event[2] == str(seq)
    assert json.loads(event[1]) == {"seq": seq, **body}


def test_the_retry_and_keepalive_messages_are_sse_starlettes() -> None:
    assert RETRY.encode() == _library(None, None, None, RECONNECT_MS, None)
    assert KEEPALIVE_COMMENT.encode() == _library(None, None, None, None, "keepalive")
    assert read_stream((RETRY + KEEPALIVE_COMMENT).encode()) == Reading(retry_ms=RECONNECT_MS)
