"""uvicorn's httptools protocol with a deadline for reading each request.

uvicorn (0.54) closes a connection that stays idle *after* a response
(`timeout_keep_alive`), but has no limit on how long a client may take to send a request:
a connection that sends nothing, or half a request line, headers or body and then stalls,
is kept forever, and enough of them exhaust the process's file descriptors (slowloris).
Here each connection must deliver every request whole, headers and body, within
`read_timeout_s` of its first byte (or of the connection opening), or it is closed. Once a
request has been read, the application's answer takes as long as it takes (the alert
stream stays open for hours).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_READ_TIMEOUT_S: Final = 20.0


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` closing a connection whose request is not read in time; the
    deadline is the config's `request_read_timeout_s`
    (`liftledger.services.api.ApiServerConfig`)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.read_timeout_s = float(
            getattr(config, "request_read_timeout_s", DEFAULT_READ_TIMEOUT_S)
        )
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading_request = False

    def _arm_read_deadline(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_too_slow)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_too_slow(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request."""
        super().connection_made(transport)
        self._arm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._disarm_read_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Bytes of a new request start its clock (keep-alive's idle timer stops here)."""
        if not self._reading_request:
            self._arm_read_deadline()
        super().data_received(data)

    def on_message_begin(self) -> None:
        """A request starts."""
        self._reading_request = True
        self._arm_read_deadline()
        super().on_message_begin()

    def on_message_complete(self) -> None:
        """The whole request has arrived: the deadline no longer applies."""
        self._reading_request = False
        self._disarm_read_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """Between requests, uvicorn's keep-alive timeout applies, not this one."""
        super().on_response_complete()
        if not self._reading_request:
            self._disarm_read_deadline()
