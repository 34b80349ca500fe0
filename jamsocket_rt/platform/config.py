"""Platform settings: the ``JAMSOCKET_*`` variables, the platform flags, and the platform they name.

Every way of choosing a platform goes through this module. :meth:`Jamsocket.from_env
<jamsocket_rt.Jamsocket.from_env>` reads the environment with :func:`platform_from_env`; the
``connect``, ``status``, ``terminate`` and ``load`` subcommands declare the same flags with
:func:`add_platform_arguments` and turn them, with the environment, into a :data:`Platform`
with :func:`resolve_platform`.

The rules, the same for every caller:

- A flag beats its variable, which beats the default: ``--account`` / ``JAMSOCKET_ACCOUNT``,
  ``--service`` / ``JAMSOCKET_SERVICE``, ``--token`` / ``JAMSOCKET_TOKEN`` (``PLANE_TOKEN``
  for Plane), ``--api-url`` / ``JAMSOCKET_API_URL``, ``--dev-port`` / ``JAMSOCKET_DEV_PORT``.
- The platform is the one a selector flag names (``--dev``, ``--jamsocket``, ``--plane``,
  ``--connect-response``); else the one the other flags imply (``--account``, ``--service`` or
  ``--token``: Jamsocket, where Jamsocket is the subcommand's default; ``--api-url`` or
  ``--dev-port`` alone: a running dev server); else the subcommand's default.
- Jamsocket, chosen without ``--account``, ``--service`` or ``--token``, is the dev server
  when ``JAMSOCKET_DEV`` is true, as the official clients read it.
- A flag that does not apply to the chosen platform is an error, never silently ignored.

Errors name the flag or the variable at fault. A variable's value is never quoted: it may be a
secret put in the wrong variable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from attrs import field, frozen

from .._errors import ConfigurationError
from .._models import ConnectResponse
from ..protocol._requests import check_base_url
from ..protocol.api import DEFAULT_API_URL, origin
from ._flag_types import argument_type, port_number, proxy_flag, url

if TYPE_CHECKING:
    import argparse

__all__ = [
    "DEFAULT_DEV_PORT",
    "ENV_ACCOUNT",
    "ENV_API_URL",
    "ENV_DEV",
    "ENV_DEV_PORT",
    "ENV_PLANE_TOKEN",
    "ENV_SERVICE",
    "ENV_TOKEN",
    "DevPlatform",
    "FixedPlatform",
    "FlagError",
    "JamsocketPlatform",
    "PlanePlatform",
    "Platform",
    "add_platform_arguments",
    "dev_requested",
    "platform_flags_given",
    "platform_from_env",
    "read_connect_response",
    "resolve_platform",
]

ENV_DEV = "JAMSOCKET_DEV"
ENV_DEV_PORT = "JAMSOCKET_DEV_PORT"
ENV_ACCOUNT = "JAMSOCKET_ACCOUNT"
ENV_SERVICE = "JAMSOCKET_SERVICE"
ENV_TOKEN = "JAMSOCKET_TOKEN"  # noqa: S105 - the name of a variable, not a password
ENV_API_URL = "JAMSOCKET_API_URL"
ENV_PLANE_TOKEN = "PLANE_TOKEN"  # noqa: S105 - the name of a variable, not a password

#: The dev server's port when neither ``--dev-port`` nor ``JAMSOCKET_DEV_PORT`` says (as
#: ``jamsocket dev``).
DEFAULT_DEV_PORT = 8080

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"", "false", "0", "no", "off"})

T = TypeVar("T")
Kind = Literal["dev", "jamsocket", "plane", "fixed"]


class FlagError(ConfigurationError):
    """The platform flags are incomplete or contradictory: a usage error of the command line.

    A wrong value in an environment variable is a plain :class:`ConfigurationError` instead.
    """


def _url_repr(url: str) -> str:
    # The origin only: a Plane URL may carry its token as user info.
    return repr(origin(url))


@frozen
class DevPlatform:
    """A running dev server (``jamsocket-rt dev``, ``jamsocket dev``), the API's stand-in.

    Attributes:
        api_url: its API URL.
    """

    api_url: str


@frozen
class JamsocketPlatform:
    """The Jamsocket platform API.

    Attributes:
        account: the account name.
        service: the service, or ``"{service}/{environment}"``.
        token: the API token (never shown by ``repr``).
        api_url: the API's base URL.
    """

    account: str
    service: str
    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL


@frozen
class PlanePlatform:
    """A self-hosted Plane controller.

    Attributes:
        controller_url: its base URL (a user name in it is the token, as Plane's client reads
            it; ``repr`` shows the origin only).
        image: the image to spawn for a new backend.
        token: a bearer token for a controller behind an authenticating proxy.
    """

    controller_url: str = field(repr=_url_repr)
    image: str | None = None
    token: str | None = field(default=None, repr=False)


@frozen
class FixedPlatform:
    """One ConnectResponse given up front: no platform API calls at all.

    Attributes:
        response: the ConnectResponse's fields, as the API returned them (already checked).
    """

    response: Mapping[str, Any] = field(repr=False)

    def connect_response(self) -> ConnectResponse:
        """The response as a :class:`~jamsocket_rt.ConnectResponse`."""
        return ConnectResponse.from_dict(dict(self.response))


#: Where backends come from, as :func:`resolve_platform` found it.
Platform = DevPlatform | JamsocketPlatform | PlanePlatform | FixedPlatform


# -- the environment ---------------------------------------------------------------------------


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def dev_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``JAMSOCKET_DEV`` asks for the dev server (``true``, ``1``, ``yes``, ``on``).

    Raises:
        ConfigurationError: ``JAMSOCKET_DEV`` is neither a true nor a false value
            (``false``, ``0``, ``no``, ``off``, empty).
    """
    value = _environ(environ).get(ENV_DEV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{ENV_DEV} must be true or false (true, 1, yes / false, 0, no)")


def _env_dev_port(environ: Mapping[str, str]) -> int:
    text = environ.get(ENV_DEV_PORT, "").strip()
    if not text:
        return DEFAULT_DEV_PORT
    port = port_number(text)
    if port is None:
        raise ConfigurationError(f"{ENV_DEV_PORT} must be a port number (1-65535)")
    return port


def _env_api_url(environ: Mapping[str, str]) -> str:
    value = environ.get(ENV_API_URL, "").strip()
    return check_base_url(value, ENV_API_URL) if value else DEFAULT_API_URL


def _dev_url(port: int) -> str:
    return f"http://localhost:{port}"


def platform_from_env(
    environ: Mapping[str, str] | None = None,
) -> DevPlatform | JamsocketPlatform:
    """The platform the ``JAMSOCKET_*`` variables name, as the official clients read them.

    ``JAMSOCKET_DEV=true`` (with an optional ``JAMSOCKET_DEV_PORT``, default 8080) names the
    dev server on localhost; otherwise ``JAMSOCKET_ACCOUNT``, ``JAMSOCKET_TOKEN`` and
    ``JAMSOCKET_SERVICE`` are required and ``JAMSOCKET_API_URL`` is optional.

    Args:
        environ: the variables to read (default: ``os.environ``).

    Returns:
        The dev server or the Jamsocket API.

    Raises:
        ConfigurationError: a required variable is missing or empty, or a variable's value is
            malformed (the variable is named, its value never shown).
    """
    env = _environ(environ)
    if dev_requested(env):
        return DevPlatform(_dev_url(_env_dev_port(env)))
    missing = [name for name in (ENV_ACCOUNT, ENV_TOKEN, ENV_SERVICE) if not env.get(name)]
    if missing:
        raise ConfigurationError(
            f"missing environment variable(s): {', '.join(missing)} "
            f"(or set {ENV_DEV}=true to use the dev server)"
        )
    return JamsocketPlatform(
        account=env[ENV_ACCOUNT],
        service=env[ENV_SERVICE],
        token=env[ENV_TOKEN],
        api_url=_env_api_url(env),
    )


# -- the flags ---------------------------------------------------------------------------------

#: Each setting flag, its argparse destination, and the platforms it applies to.
_SETTINGS: dict[str, tuple[str, tuple[Kind, ...]]] = {
    "--account": ("account", ("jamsocket",)),
    "--service": ("service", ("jamsocket",)),
    "--token": ("token", ("jamsocket", "plane")),
    "--api-url": ("api_url", ("dev", "jamsocket")),
    "--dev-port": ("dev_port", ("dev",)),
    "--image": ("image", ("plane",)),
}
_SELECTORS: dict[Kind, str] = {
    "dev": "--dev",
    "jamsocket": "--jamsocket",
    "plane": "--plane",
    "fixed": "--connect-response",
}
_JAMSOCKET_FLAGS = ("--account", "--service", "--token")


def add_platform_arguments(
    parser: argparse.ArgumentParser, *, default: str
) -> argparse._MutuallyExclusiveGroup:
    """Declares the platform flags on ``parser``, the same for every subcommand.

    Args:
        parser: a subcommand's parser.
        default: what the subcommand uses when no flag names a platform (for the help).

    Returns:
        The mutually exclusive group of the platform selectors, so that a subcommand can add a
        selector of its own (``load``'s ``--dev-backend``).
    """
    group = parser.add_argument_group(
        "platform",
        f"Where backends come from (default: {default}). Each setting is a flag or its "
        "environment variable; the flag wins.",
    )
    selectors = group.add_mutually_exclusive_group()
    selectors.add_argument(
        "--dev",
        action="store_true",
        help="a running dev server (jamsocket-rt dev): at --api-url, else on localhost at "
        f"--dev-port / {ENV_DEV_PORT} (default {DEFAULT_DEV_PORT})",
    )
    selectors.add_argument(
        "--jamsocket",
        action="store_true",
        help="the Jamsocket API with --account, --service, --token, --api-url or their "
        f"JAMSOCKET_* variables; with none of those flags and {ENV_DEV}=true, the dev server",
    )
    selectors.add_argument(
        "--plane",
        metavar="URL",
        type=argument_type(url, "an absolute http:// or https:// URL"),
        help=f"the self-hosted Plane controller at URL (--image; --token or {ENV_PLANE_TOKEN})",
    )
    selectors.add_argument(
        "--connect-response",
        metavar="JSON|@FILE",
        help="one fixed ConnectResponse (@- reads stdin): no platform API calls",
    )
    group.add_argument(
        "--dev-port",
        metavar="PORT",
        type=argument_type(port_number, "a port number (1-65535)"),
        help=f"the dev server's port on localhost ({ENV_DEV_PORT}, default {DEFAULT_DEV_PORT})",
    )
    group.add_argument(
        "--api-url",
        metavar="URL",
        type=argument_type(url, "an absolute http:// or https:// URL"),
        help=f"the Jamsocket API URL ({ENV_API_URL}); without --jamsocket, --account, "
        "--service or --token: a running dev server's URL",
    )
    group.add_argument("--account", help=f"the Jamsocket account ({ENV_ACCOUNT})")
    group.add_argument("--service", help=f"the Jamsocket service[/environment] ({ENV_SERVICE})")
    group.add_argument(
        "--token",
        help=f"the Jamsocket API token ({ENV_TOKEN}) or Plane's bearer token "
        f"({ENV_PLANE_TOKEN}); the variable keeps it out of the process list",
    )
    group.add_argument("--image", help="Plane: the image to spawn for a new backend")
    group.add_argument(
        "--proxy",
        metavar="URL|off",
        type=argument_type(proxy_flag, "an http:// proxy URL, or off"),
        help="the HTTP proxy of every connection (http://[user:password@]host:port); 'off' "
        "connects directly; default: HTTPS_PROXY / HTTP_PROXY / NO_PROXY",
    )
    return selectors


def read_connect_response(text: str, option: str = "--connect-response") -> dict[str, Any]:
    """A ConnectResponse's fields from inline JSON, ``@FILE`` or ``@-`` (stdin), checked.

    Raises:
        FlagError: the file cannot be read, or it is not a valid ConnectResponse (``option``
            and every bad field are named).
    """
    raw = text
    if text == "@-":
        raw = sys.stdin.read()
    elif text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text()
        except OSError as exc:
            raise FlagError(f"{option}: cannot read {text[1:]!r}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise FlagError(f"{option}: not valid JSON") from None
    if not isinstance(data, dict):
        raise FlagError(f"{option}: expected a JSON object")
    try:
        ConnectResponse.from_dict(data)
    except ValueError as exc:
        raise FlagError(f"{option}: {exc}") from None
    return data


def _given(args: argparse.Namespace) -> list[str]:
    return [flag for flag, (dest, _) in _SETTINGS.items() if getattr(args, dest) is not None]


def _selected(args: argparse.Namespace) -> list[Kind]:
    chosen: list[Kind] = []
    if args.dev:
        chosen.append("dev")
    if args.jamsocket:
        chosen.append("jamsocket")
    if args.plane is not None:
        chosen.append("plane")
    if args.connect_response is not None:
        chosen.append("fixed")
    return chosen


def platform_flags_given(args: argparse.Namespace) -> list[str]:
    """The platform flags on the command line (selectors first), in a fixed order."""
    return [_SELECTORS[kind] for kind in _selected(args)] + _given(args)


def _choose(args: argparse.Namespace, given: list[str], default_jamsocket: bool) -> Kind | None:
    chosen = _selected(args)
    if len(chosen) > 1:
        raise FlagError(f"{_SELECTORS[chosen[1]]}: not with {_SELECTORS[chosen[0]]}")
    if chosen:
        return chosen[0]
    if any(flag in given for flag in _JAMSOCKET_FLAGS):
        return "jamsocket" if default_jamsocket else None
    if "--api-url" in given or "--dev-port" in given:
        return "dev"
    return "jamsocket" if default_jamsocket else None


def resolve_platform(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    *,
    default_jamsocket: bool,
) -> Platform | None:
    """The platform that parsed flags (see :func:`add_platform_arguments`) and the environment name.

    Args:
        args: the parsed arguments.
        environ: the variables to read (default: ``os.environ``).
        default_jamsocket: True where Jamsocket (or, by ``JAMSOCKET_DEV``, the dev server) is
            the subcommand's default platform, so ``--account``, ``--service`` and ``--token``
            imply it; False where the subcommand has a default of its own.

    Returns:
        The platform; None when nothing names one and ``default_jamsocket`` is False.

    Raises:
        FlagError: flags contradict each other, one does not apply to the platform, or a
            setting is given neither as a flag nor as a variable.
        ConfigurationError: a variable's value is malformed.
    """
    env = _environ(environ)
    given = _given(args)
    kind = _choose(args, given, default_jamsocket)
    jamsocket_flags = [flag for flag in _JAMSOCKET_FLAGS if flag in given]
    if kind == "jamsocket" and not jamsocket_flags and dev_requested(env):
        kind = "dev"
    for flag in given:
        kinds = _SETTINGS[flag][1]
        if kind not in kinds:
            raise FlagError(f"{flag}: only with {' or '.join(_SELECTORS[k] for k in kinds)}")
    if kind == "dev":
        if args.api_url is not None and args.dev_port is not None:
            raise FlagError("--dev-port: not with --api-url (the URL says where)")
        if args.api_url is not None:
            return DevPlatform(args.api_url)
        port = args.dev_port if args.dev_port is not None else _env_dev_port(env)
        return DevPlatform(_dev_url(port))
    if kind == "jamsocket":
        return _jamsocket(args, env, jamsocket_flags)
    if kind == "plane":
        token = args.token if args.token is not None else env.get(ENV_PLANE_TOKEN)
        return PlanePlatform(args.plane, image=args.image, token=token or None)
    if kind == "fixed":
        return FixedPlatform(read_connect_response(args.connect_response))
    return None


def _jamsocket(
    args: argparse.Namespace, env: Mapping[str, str], flags: list[str]
) -> JamsocketPlatform:
    account = args.account if args.account is not None else env.get(ENV_ACCOUNT, "")
    service = args.service if args.service is not None else env.get(ENV_SERVICE, "")
    token = args.token if args.token is not None else env.get(ENV_TOKEN, "")
    # The token's variable is named first: it keeps the token off the command line.
    settings = (
        ("--account", ENV_ACCOUNT, account),
        ("--service", ENV_SERVICE, service),
        (ENV_TOKEN, "--token", token),
    )
    missing = [(first, second) for first, second, value in settings if not value]
    if missing:
        names = ", ".join(first for first, _ in missing)
        hint = ", ".join(f"{first} or {second}" for first, second in missing)
        if not flags:
            hint += f"; or --dev / {ENV_DEV}=true for a dev server"
        raise FlagError(f"--jamsocket: missing {names} (give {hint})")
    api_url = args.api_url if args.api_url is not None else _env_api_url(env)
    return JamsocketPlatform(account=account, service=service, token=token, api_url=api_url)
