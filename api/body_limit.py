"""Request bodies are limited before anything parses them, for every caller.

A declared `Content-Length` above the limit is answered 413 at once, without reading a
byte of the body; a body sent without one (chunked) is counted as it arrives and answered
413 as soon as it passes the limit, so at most the limit (plus one network read) is ever
held. The 413 closes the connection, so the rest of an oversized body is never read.

A JSON body is read whole (it is within the limit) and its nesting checked by a linear scan
before the application's parser sees it: the API process imports web3, whose `py_ecc` raises
Python's recursion limit to 100,000, so a deeply nested body would overflow the C stack of
the JSON decoder and kill the process instead of raising. Deeper than `max_json_depth` is
answered 400 `too_deep`.
"""

from __future__ import annotations

from typing import Final

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorBody
from core.stored_json import depth_exceeds

CODE: Final = "payload_too_large"
TOO_DEEP: Final = "too_deep"
# Request bodies of this API nest a few levels (a record's details, thresholds).
MAX_JSON_DEPTH: Final = 32
_SCAN_ON_LOOP_BYTES: Final = 64 * 1024


class BodySizeLimit:
    """ASGI middleware answering 413 `payload_too_large` to a body above `max_bytes`."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_json_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_depth = max_json_depth

    async def _refuse(self, send: Send, status: int = 413, error: ErrorBody | None = None) -> None:
        error = error or ErrorBody(
            code=CODE, message=f"the request body is larger than {self.max_bytes} bytes"
        )
        body = error.model_dump_json().encode()
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the HTTP parser refuses a malformed length before this
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    # The application sees the client gone and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; what the application answers is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if not _is_json(scope):
            await self.app(scope, limited_receive, guarded_send)
            return
        chunks: list[bytes] = []
        while True:
            message = await limited_receive()
            if message["type"] != "http.request":
                return  # gone, or refused as too large
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # A large body is scanned in a worker thread (about 10 ms a MiB), not on the loop.
        if len(body) > _SCAN_ON_LOOP_BYTES:
            too_deep = await anyio.to_thread.run_sync(depth_exceeds, body, self.max_json_depth)
        else:
            too_deep = depth_exceeds(body, self.max_json_depth)
        if too_deep:
            await self._refuse(
                send,
                400,
                ErrorBody(
                    code=TOO_DEEP,
                    message=f"the JSON body nests more than {self.max_json_depth} levels",
                    field="body",
                ),
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, guarded_send)


def _is_json(scope: Scope) -> bool:
    """True when the application would parse the body as JSON (FastAPI also does so for a
    body sent without a content type)."""
    if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return False
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True
