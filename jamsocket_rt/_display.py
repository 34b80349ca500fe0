"""How a Session shows itself in a notebook or a REPL: text, HTML and a live widget.

The summary never contains a token: the URL is shown redacted.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from ._models import redact_url

if TYPE_CHECKING:
    from .asyncio.session import Session


def summary(session: Session) -> dict[str, str]:
    """The facts worth showing, as display strings, in a stable order."""
    state = session.status
    status = "no status yet"
    if state is not None:
        status = f"{state.status} at {state.time:%H:%M:%S}"
        if state.termination_reason is not None:
            status += f" ({state.termination_reason})"
    rtt = session.last_round_trip
    response = session.response
    return {
        "backend": session.backend_id or "(not connected yet)",
        "status": status,
        "ready": "yes" if session.ready else "no",
        "connected": "yes" if session.connected else "no",
        "events": f"{session.events_sent} sent, {session.events_received} received",
        "last round trip": "-" if rtt is None else f"{rtt * 1e3:.2f} ms",
        "url": redact_url(response.url) if response is not None else "-",
    }


def as_text(session: Session) -> str:
    facts = summary(session)
    width = max(len(key) for key in facts)
    lines = [f"{key:>{width}}  {value}" for key, value in facts.items()]
    return "Session\n" + "\n".join(lines)


def as_html(session: Session) -> str:
    facts = summary(session)
    colour = "#2a7" if session.ready and session.connected else "#c60"
    if session.terminated is not None:
        colour = "#c33"
    rows = "".join(
        f"<tr><th style='text-align:right;padding-right:1em'>{html.escape(key)}</th>"
        f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
        for key, value in facts.items()
    )
    return (
        f"<div style='border-left:4px solid {colour};padding-left:8px'>"
        f"<b>jamsocket_rt Session</b><table>{rows}</table></div>"
    )


def live(session: Session) -> Any:
    """An ipywidgets HTML that redraws on every status and connection change.

    Returns:
        The widget, or None when ipywidgets is not installed (the caller shows text then).
    """
    try:
        import ipywidgets
    except ImportError:
        return None
    widget = ipywidgets.HTML(value=as_html(session))

    def redraw(*_: object) -> None:
        widget.value = as_html(session)

    for hook in (
        session.on_status,
        session.on_ready,
        session.on_disconnect,
        session.on_reconnect,
        session.on_terminated,
    ):
        hook(redraw)
    return widget
