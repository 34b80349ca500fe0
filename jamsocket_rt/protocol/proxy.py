"""HTTP proxies, sans I/O: which proxy a URL goes through, and the CONNECT tunnel's handshake.

Every connection the library opens asks :func:`proxy_for` which proxy to use: an explicit
``proxy=`` option (a URL, or ``False`` for none) wins; otherwise ``HTTPS_PROXY`` /
``HTTP_PROXY`` (lower case first, as curl reads them) by the target's scheme, unless
``NO_PROXY`` names the host. Websockets go through a CONNECT tunnel (:class:`TunnelHandshake`),
with TLS to the backend inside it, so the proxy sees the backend's host and port, never a
path, token or header.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

from attrs import frozen

from .._errors import ConfigurationError
from .engineio import ProtocolError

__all__ = [
    "MAX_PROXY_HEAD",
    "Proxy",
    "ProxySetting",
    "TunnelHandshake",
    "TunnelRefused",
    "no_proxy_matches",
    "parse_proxy",
    "proxy_for",
]

#: What ``proxy=`` takes: None (the environment decides), a proxy URL, or False (no proxy).
ProxySetting = str | bool | None

#: The longest answer head a proxy may send to CONNECT, in bytes.
MAX_PROXY_HEAD = 16 * 1024


@frozen
class Proxy:
    """An HTTP proxy.

    Attributes:
        host: its host name or IP literal.
        port: its port.
        username: the user name of its Basic authentication, if any.
        password: its password (never shown by repr or in error messages).
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def where(self) -> str:
        """``host:port``, what error messages name (never the credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The proxy's URL with its credentials (for aiohttp's ``proxy=``; keep it private)."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="") + ":" + quote(self.password or "", safe="") + "@"
        return f"http://{auth}{self.where}"

    def __repr__(self) -> str:
        user = "" if self.username is None else f", username={self.username!r}, password='***'"
        return f"Proxy({self.where!r}{user})"

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header's value, or None without credentials."""
        if self.username is None:
            return None
        token = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(token).decode("ascii")


def parse_proxy(url: str, *, source: str = "proxy") -> Proxy:
    """The proxy of ``url`` (``http://[user:password@]host[:port]``; the port defaults to 80).

    Args:
        url: the proxy's URL; ``host:port`` without a scheme is taken as http.
        source: what the URL came from (``proxy``, ``HTTPS_PROXY``...), for error messages.

    Raises:
        ConfigurationError: not an http URL with a host (the message names ``source``, never
            the credentials).
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"{source}: not a proxy URL") from None
    if parts.scheme.lower() != "http":
        raise ConfigurationError(
            f"{source}: only http:// proxies are supported (HTTP CONNECT), not {parts.scheme}://"
        )
    if not parts.hostname:
        raise ConfigurationError(f"{source}: the proxy URL has no host")
    return Proxy(
        host=parts.hostname,
        port=port or 80,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def no_proxy_matches(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated) exempts ``host``.

    Entries: ``*`` (everything), a domain (``example.com`` and ``.example.com`` both match
    the domain and its subdomains), an IP address or CIDR block, each optionally with
    ``:port``.
    """
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.count(":") == 1 and not entry.startswith("["):  # host:port (not IPv6)
            entry, _, port_text = entry.partition(":")
            entry_port = int(port_text) if port_text.isdigit() else None
        entry = entry.strip("[]").rstrip(".")
        if entry_port is not None and port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False


def _from_environment(secure: bool, environ: Mapping[str, str]) -> tuple[str, str] | None:
    names = ("https_proxy", "HTTPS_PROXY") if secure else ("http_proxy", "HTTP_PROXY")
    for name in (*names, "all_proxy", "ALL_PROXY"):
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def proxy_for(
    url: str, setting: ProxySetting = None, environ: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy a connection to ``url`` goes through, or None for a direct one.

    Args:
        url: the target (``http``, ``https``, ``ws`` or ``wss``).
        setting: the ``proxy=`` option: a URL (used for every target), False (never a
            proxy), or None/True (the environment's, as curl reads it).
        environ: the variables to read (default: ``os.environ``).

    Raises:
        ConfigurationError: the option or variable is not an http proxy URL (named).
    """
    if setting is False:
        return None
    if isinstance(setting, str):
        return parse_proxy(setting)
    environ = os.environ if environ is None else environ
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    found = _from_environment(secure, environ)
    if found is None:
        return None
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        port = None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if no_proxy and no_proxy_matches(host, port, no_proxy):
        return None
    name, value = found
    return parse_proxy(value, source=name)


class TunnelRefused(ConnectionError):
    """The proxy answered CONNECT with another status than 200 (its status is in the message).

    Attributes:
        status: the proxy's HTTP status (407: it wants other credentials).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TunnelHandshake:
    """One CONNECT through an HTTP proxy to ``host:port``: the request, then the answer.

    Args:
        proxy: the proxy.
        host: the target's host name or IP literal.
        port: the target's port.

    Attributes:
        request: the CONNECT request to send.
    """

    __slots__ = ("_head", "_proxy", "_target", "request")

    def __init__(self, proxy: Proxy, host: str, port: int) -> None:
        self._proxy = proxy
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._target = target
        self._head = bytearray()
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        authorization = proxy.authorization()
        if authorization is not None:
            lines.append(f"Proxy-Authorization: {authorization}")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def receive_data(self, data: bytes) -> bytes | None:
        """Feeds bytes of the proxy's answer.

        Returns:
            None while the answer's head is incomplete; once the tunnel is open, what followed
            the head (empty: a server speaks only once spoken to).

        Raises:
            TunnelRefused: another status than 2xx (the message names the proxy and the target).
            ProtocolError: the answer is not HTTP, or its head is endless.
        """
        if not data:
            raise ConnectionError(
                f"the proxy {self._proxy.where} closed the connection before answering CONNECT"
            )
        head = self._head
        searched = max(0, len(head) - 3)
        head += data
        end = head.find(b"\r\n\r\n", searched)
        if end < 0:
            if len(head) > MAX_PROXY_HEAD:
                raise ProtocolError(f"the proxy {self._proxy.where} sent an endless answer")
            return None
        status_line = bytes(head[: head.find(b"\r\n")]).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(
                f"the proxy {self._proxy.where} answered CONNECT with something else than HTTP"
            )
        status = int(parts[1])
        if not 200 <= status < 300:
            reason = parts[2] if len(parts) > 2 else ""
            raise TunnelRefused(
                f"the proxy {self._proxy.where} refused the tunnel to {self._target}: "
                f"{status} {reason}".rstrip(),
                status,
            )
        return bytes(head[end + 4 :])
