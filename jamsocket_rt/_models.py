"""Typed, frozen models of the Jamsocket / Plane types (see ``@jamsocket/types``).

All (de)serialization goes through the one converter in :mod:`jamsocket_rt._converter`.
Secrets (``token``, ``secret_token``, and the token inside ``url``) are left out of ``repr``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from attrs import field, frozen
from cattrs.gen import make_dict_structure_fn, override

from . import _converter as conv

M = TypeVar("M", bound="Model")


class BackendStatus(str, enum.Enum):
    """The lifecycle of a session backend, in order."""

    SCHEDULED = "scheduled"
    LOADING = "loading"
    STARTING = "starting"
    WAITING = "waiting"
    READY = "ready"
    TERMINATING = "terminating"
    HARD_TERMINATING = "hard-terminating"
    TERMINATED = "terminated"

    def __str__(self) -> str:
        return self.value


class TerminationReason(str, enum.Enum):
    """Why a backend was terminated."""

    SWEPT = "swept"
    EXTERNAL = "external"
    KEY_EXPIRED = "keyexpired"
    LOST = "lost"
    STARTUP_TIMEOUT = "startuptimeout"
    INTERNAL_ERROR = "internalerror"

    def __str__(self) -> str:
        return self.value


class TerminationKind(str, enum.Enum):
    """How a backend was terminated: asked to stop (soft) or killed (hard)."""

    SOFT = "soft"
    HARD = "hard"

    def __str__(self) -> str:
        return self.value


_STATUS_ORDER = {status: index for index, status in enumerate(BackendStatus)}
# terminating and hard-terminating are alternatives at the same step.
_STATUS_ORDER[BackendStatus.HARD_TERMINATING] = _STATUS_ORDER[BackendStatus.TERMINATING]
_STATUS_ORDER[BackendStatus.TERMINATED] = _STATUS_ORDER[BackendStatus.TERMINATING] + 1


def status_rank(status: BackendStatus | str) -> int:
    """The position of a status in the lifecycle; an unknown status ranks -1."""
    if isinstance(status, BackendStatus):
        return _STATUS_ORDER[status]
    return -1


class Model:
    """from_dict / from_json / to_dict / to_json, shared by every model."""

    __slots__ = ()

    @classmethod
    def from_dict(cls: type[M], data: object) -> M:
        """Build an instance from decoded JSON.

        Raises:
            InvalidResponse: a field is missing or of the wrong type; the message names each.
        """
        return conv.structure(data, cls)

    @classmethod
    def from_json(cls: type[M], text: str | bytes | bytearray) -> M:
        """Build an instance from a JSON document (str or bytes).

        Raises:
            InvalidResponse: the text is not JSON, or does not fit (every bad field named).
        """
        return conv.structure(conv.loads(text, cls.__name__), cls)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, with absent (None) fields left out."""
        return conv.unstructure(self)

    def to_json(self) -> str:
        """Compact JSON, as ``JSON.stringify`` would write it."""
        return conv.dumps_compact(self.to_dict())


def _validate_http_url(_: object, attribute: Any, value: str) -> None:
    try:
        conv.check_http_url(value)
    except conv.FieldError as exc:
        raise conv.FieldError(f"{attribute.name}: {exc}") from None


def _validate_optional_url(_: object, attribute: Any, value: str) -> None:
    if value != "":
        _validate_http_url(_, attribute, value)


def _validate_token_path(_: object, attribute: Any, value: str) -> None:
    _validate_http_url(_, attribute, value)
    if not urlsplit(value).path.strip("/"):
        raise conv.FieldError(f"{attribute.name}: expected a URL with the token in its path")


def redact_url(url: str) -> str:
    """The URL with its path hidden: a backend URL carries the token in its path."""
    parts = urlsplit(url)
    if not parts.path.strip("/"):
        return url
    return f"{parts.scheme}://{parts.netloc}/<redacted>/"


@frozen
class BackendState(Model):
    """One status of a backend, as served by ``status_url`` and its stream.

    ``status`` is a :class:`BackendStatus`, or the raw string of a status this version of the
    library does not know (such a state is neither ready nor terminated).
    """

    status: BackendStatus | str
    time: datetime
    termination_reason: TerminationReason | str | None = None
    termination_kind: TerminationKind | None = None
    exit_error: bool | None = None

    @property
    def is_ready(self) -> bool:
        return self.status is BackendStatus.READY

    @property
    def is_terminating(self) -> bool:
        return self.status in (BackendStatus.TERMINATING, BackendStatus.HARD_TERMINATING)

    @property
    def is_terminated(self) -> bool:
        return self.status is BackendStatus.TERMINATED

    @property
    def is_known(self) -> bool:
        return isinstance(self.status, BackendStatus)


@frozen
class ConnectResponse(Model):
    """What ``connect`` returns: where the backend is and how to reach it.

    ``token`` and ``secret_token`` are secrets: they are not part of ``repr`` and ``str``,
    and ``url`` (which carries the token in its path) is shown redacted.
    """

    backend_id: str
    spawned: bool
    status: BackendStatus | str
    token: str = field(repr=False)
    url: str = field(validator=_validate_token_path, repr=redact_url)
    status_url: str = field(validator=_validate_http_url)
    ready_url: str = field(default="", validator=_validate_optional_url)
    secret_token: str | None = field(default=None, repr=False)


@frozen
class ResourceLimits(Model):
    """Container resource limits of a spawn request."""

    cpu_period: int | None = None
    cpu_period_percent: int | None = None
    cpu_time_limit: int | None = None
    memory_limit_bytes: int | None = None
    disk_limit_bytes: int | None = None


@frozen
class ExecutableOptions(Model):
    """What to run: mount, environment and resource limits."""

    mount: str | bool | None = None
    env: dict[str, str] | None = None
    resource_limits: ResourceLimits | None = None


@frozen
class SpawnOptions(Model):
    """How to spawn a backend when none holds the key."""

    tag: str | None = None
    cluster: str | None = None
    lifetime_limit_seconds: int | None = None
    max_idle_seconds: int | None = None
    executable: ExecutableOptions | None = None


@frozen
class ConnectRequest(Model):
    """The body of a connect call. Every field is optional; absent fields are not sent."""

    key: str | None = None
    spawn: bool | SpawnOptions | None = None
    user: str | None = None
    auth: dict[str, Any] | None = None


def _structure_spawn(value: object, _: Any) -> bool | SpawnOptions | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return conv.converter.structure(value, SpawnOptions)
    raise conv.FieldError(f"expected a boolean or an object, got {conv.type_name(value)}")


conv.converter.register_structure_hook(bool | SpawnOptions | None, _structure_spawn)


def _structure_mount(value: object, _: Any) -> str | bool | None:
    if value is None or isinstance(value, (bool, str)):
        return value
    raise conv.FieldError(f"expected a string or a boolean, got {conv.type_name(value)}")


conv.converter.register_structure_hook(str | bool | None, _structure_mount)


def _structure_url(value: object, _: Any) -> str:
    return conv.check_http_url(value)


def _structure_optional_url(value: object, _: Any) -> str:
    return "" if value == "" else conv.check_http_url(value)


conv.converter.register_structure_hook(
    ConnectResponse,
    make_dict_structure_fn(
        ConnectResponse,
        conv.converter,
        url=override(struct_hook=_structure_url),
        status_url=override(struct_hook=_structure_url),
        ready_url=override(struct_hook=_structure_optional_url),
    ),
)
