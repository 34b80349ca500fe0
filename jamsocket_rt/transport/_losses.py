"""How a websocket transport's connection ends, and how each ending is reported.

:class:`LossReporting` is the base of :class:`~.websocket.WebSocketTransport` that handles
every way a connection ends short of ``close()``: the line lost, the server's close frame, a
malformed message, a refused or failed handshake, a server silent past its ping interval plus
timeout (the liveness deadline: one timer re-armed once per window). Before the server
accepted the Socket.IO CONNECT, ``connect()`` raises; afterwards the loss is reported once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .._errors import TransportBroke
from ..protocol.engineio import ProtocolError
from ..protocol.websocket import CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, Close, is_valid_close_code
from ._common import CONNECTED as _CONNECTED
from ._common import CONNECTING as _CONNECTING
from .wsconnection import WebSocketConnection

if TYPE_CHECKING:
    from ..protocol.socketio import ClientProtocol


class LossReporting(WebSocketConnection):
    """The endings of a :class:`~.websocket.WebSocketTransport`'s connection (which sets the
    state: ``_proto`` and ``_handshake`` when connecting, these slots in its constructor)."""

    __slots__ = ("_early_loss", "_timer")

    _proto: ClientProtocol | None
    #: Done once the server answered the Socket.IO CONNECT (failed if it refused).
    _handshake: asyncio.Future[None] | None
    #: A loss between the server's accept and connect()'s return, reported after it.
    _early_loss: BaseException | None
    _timer: asyncio.TimerHandle | None

    def _fail_handshake(self, error: BaseException) -> None:
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_linger()
        closed = self._closed
        if closed is not None and not closed.done():
            closed.set_result(None)
        self._wake_drainers(ConnectionError("the connection was lost"))
        self._failed(
            ConnectionResetError("the connection was closed")
            if exc is None
            else TransportBroke(f"the connection failed: {type(exc).__name__}: {exc}"),
            ConnectionError(f"{self._where} closed the connection during the handshake"),
        )

    def _handshake_error(self, error: BaseException) -> None:
        self._start_close(CLOSE_NORMAL, wait=False)  # (only once the websocket is open)
        self._halted = True
        self._fail_handshake(error)
        self._drop()

    def _on_close_frame(self, frame: Close) -> None:
        self._start_close(frame.code)  # the answer: the same code (RFC 6455 section 5.5.1)
        why = "" if frame.code is None else f" (websocket close code {frame.code})"
        self._failed(
            ConnectionResetError(f"the connection was closed{why}"),
            ConnectionError(f"{self._where} closed the websocket during the handshake{why}"),
        )

    def _protocol_failed(self, error: ProtocolError) -> None:
        code = error.close_code
        self._start_close(code if is_valid_close_code(code) else CLOSE_PROTOCOL_ERROR)
        self._failed(error)

    def _failed(self, error: BaseException, while_connecting: BaseException | None = None) -> None:
        """The connection is gone or unusable. Before the server accepted the Socket.IO CONNECT,
        connect() raises ``while_connecting`` (default: ``error``); afterwards the loss is
        reported, once connect() has returned if it has not yet (after the events that came
        before the loss)."""
        # The server ended the session, unless a close frame was sent already (or the line is
        # gone): answer it and go.
        self._start_close(CLOSE_NORMAL, wait=False)
        if self._phase is not _CONNECTING:
            # (a loss right after the accept, if any, says best what happened)
            if self._lose(self._early_loss or error):
                self._release()
            return
        handshake = self._handshake
        accepted = (
            handshake is not None
            and handshake.done()
            and not handshake.cancelled()
            and handshake.exception() is None
        )
        if not accepted:
            self._handshake_error(while_connecting or error)
            return
        # Accepted, and connect() is about to return: report the loss after it.
        if self._early_loss is None:
            self._early_loss = error
        self._halted = True
        self._drop()

    def _report_early_loss(self) -> None:
        error = self._early_loss
        if error is not None and self._lose(error):
            self._release()

    # ----------------------------------------------------------------------- liveness

    def _arm_liveness(self) -> None:
        assert self._proto is not None
        assert self._loop is not None
        deadline = self._proto.deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._check_liveness)

    def _check_liveness(self) -> None:
        self._timer = None
        proto, loop = self._proto, self._loop
        assert proto is not None
        assert loop is not None
        if self._phase is not _CONNECTED:
            return
        if not proto.expired(loop.time()):
            self._arm_liveness()
            return
        info = proto.open_info
        window = 0.0 if info is None else info.ping_interval + info.ping_timeout
        if self._lose(TimeoutError(f"no ping from the server for {window:g} s")):
            # Black-holed: no close handshake can complete.
            self._release()

    def _stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
