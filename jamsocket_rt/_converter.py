"""The one cattrs converter: the single place where data is validated and (de)serialized.

Every structure hook here is strict (``"1"`` is not an int, ``"false"`` is not a bool) and
raises :class:`FieldError` with a message that says what was expected, never the value itself,
so that a bad token cannot leak through an error message. :func:`structure` turns cattrs'
nested validation errors into one :class:`~jamsocket_rt.InvalidResponse` naming every bad field.
"""

from __future__ import annotations

import enum
import json
import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, Union
from urllib.parse import urlsplit

import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)

from ._errors import InvalidResponse

T = TypeVar("T")

#: Strings received from a server longer than this are refused (a defence against huge bodies).
MAX_STRING_LENGTH = 64 * 1024


class FieldError(ValueError):
    """A leaf validation failure; its message is safe to show (it never contains the value)."""


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def check_http_url(value: object) -> str:
    """Return ``value`` if it is an absolute http(s) URL with a host.

    Raises:
        FieldError: it is not.
    """
    text = _check_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FieldError("expected an absolute http:// or https:// URL")
    return text


def _check_str(value: object) -> str:
    if not isinstance(value, str):
        raise FieldError(f"expected a string, got {type_name(value)}")
    if len(value) > MAX_STRING_LENGTH:
        raise FieldError(f"string too long ({len(value)} characters, at most {MAX_STRING_LENGTH})")
    return value


def _check_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"expected a boolean, got {type_name(value)}")
    return value


def _check_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise FieldError(f"expected an integer, got {type_name(value)}")
    return value


def _check_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(f"expected a number, got {type_name(value)}")
    return float(value)


_FRACTION = re.compile(r"(\.\d+)")


def parse_time(value: object) -> datetime:
    """A timezone-aware datetime from an ISO-8601 string or epoch milliseconds.

    Jamsocket sends ISO strings (possibly with nanoseconds and a ``Z``); Plane sends epoch
    milliseconds. A naive ISO string is taken as UTC.

    Raises:
        FieldError: the value is neither.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=value)
        except OverflowError:
            raise FieldError("epoch milliseconds out of range") from None
    if isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Python 3.10's fromisoformat takes at most 6 fractional digits; Rust sends up to 9.
        text = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], text, count=1)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise FieldError(
        f"expected an ISO-8601 time string or epoch milliseconds, got {type_name(value)}"
    )


def format_time(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, the way Jamsocket writes it."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _normalize_enum_text(text: str) -> str:
    # The types README says "keyexpired"; other versions of the JS types say "key_expired".
    return text.lower().replace("_", "").replace("-", "")


def _enum_lookup(enum_type: type[enum.Enum], value: object) -> enum.Enum | None:
    if not isinstance(value, str):
        return None
    try:
        return enum_type(value)
    except ValueError:
        pass
    wanted = _normalize_enum_text(value)
    for member in enum_type:
        if _normalize_enum_text(str(member.value)) == wanted:
            return member
    return None


def _union_args(tp: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(tp)
    return ()


def _open_enum_parts(tp: Any) -> tuple[type[enum.Enum], bool] | None:
    """For ``E | str`` or ``E | str | None``: (E, allows None); else None."""
    args = _union_args(tp)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
    rest = [a for a in args if a not in enums]
    if len(enums) == 1 and str in rest and set(rest) <= {str, type(None)}:
        return enums[0], type(None) in rest
    return None


def _strict_enum_parts(tp: Any) -> tuple[type[enum.Enum], bool] | None:
    """For ``E`` or ``E | None``: (E, allows None); else None."""
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp, False
    args = _union_args(tp)
    if len(args) == 2 and type(None) in args:
        other = args[0] if args[1] is type(None) else args[1]
        if isinstance(other, type) and issubclass(other, enum.Enum):
            return other, True
    return None


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)

    conv.register_structure_hook(str, lambda v, _: _check_str(v))
    conv.register_structure_hook(bool, lambda v, _: _check_bool(v))
    conv.register_structure_hook(int, lambda v, _: _check_int(v))
    conv.register_structure_hook(float, lambda v, _: _check_float(v))
    conv.register_structure_hook(datetime, lambda v, _: parse_time(v))
    conv.register_unstructure_hook(datetime, format_time)

    def structure_any_mapping(value: object, _: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise FieldError(f"expected an object, got {type_name(value)}")
        return dict(value)

    conv.register_structure_hook_func(
        lambda t: t in (dict[str, Any], Mapping[str, Any]), structure_any_mapping
    )

    def structure_str_mapping(value: object, _: Any) -> dict[str, str]:
        mapping = structure_any_mapping(value, None)
        bad = [k for k, v in mapping.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise FieldError(f"expected string keys and values; not so for {len(bad)} entries")
        return mapping

    conv.register_structure_hook_func(
        lambda t: t in (dict[str, str], Mapping[str, str]), structure_str_mapping
    )

    def structure_open_enum(value: object, tp: Any) -> Any:
        parts = _open_enum_parts(tp)
        assert parts is not None
        enum_type, nullable = parts
        if value is None and nullable:
            return None
        member = _enum_lookup(enum_type, value)
        # An unknown value is kept raw: a newer server must not crash an older client.
        return member if member is not None else _check_str(value)

    conv.register_structure_hook_func(
        lambda t: _open_enum_parts(t) is not None, structure_open_enum
    )

    def structure_strict_enum(value: object, tp: Any) -> Any:
        parts = _strict_enum_parts(tp)
        assert parts is not None
        enum_type, nullable = parts
        if value is None and nullable:
            return None
        member = _enum_lookup(enum_type, value)
        if member is None:
            allowed = ", ".join(repr(m.value) for m in enum_type)
            raise FieldError(f"expected one of {allowed}")
        return member

    conv.register_structure_hook_func(
        lambda t: _strict_enum_parts(t) is not None, structure_strict_enum
    )
    return conv


converter = _make_converter()


def _leaf_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field is missing"
    if isinstance(exc, FieldError):
        return str(exc)
    # Anything else may quote the value, which may be a secret: say only what kind it was.
    return f"invalid value ({type(exc).__name__})"


def describe_errors(exc: BaseException, path: str = "") -> list[str]:
    """Flatten a (nested) cattrs validation error into ``"path: message"`` lines."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        lines: list[str] = []
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, AttributeValidationNote):
                    sub_path = f"{path}.{note.name}" if path else note.name
                elif isinstance(note, IterableValidationNote):
                    sub_path = f"{path}[{note.index!r}]"
            lines.extend(describe_errors(sub, sub_path))
        return lines
    if not path and isinstance(exc, FieldError):
        return [str(exc)]  # from a model's own validator, which names its field
    return [f"{path or 'value'}: {_leaf_message(exc)}"]


def structure(data: object, cls: type[T], what: str | None = None) -> T:
    """Structure ``data`` into ``cls`` or raise one InvalidResponse naming every bad field.

    Raises:
        InvalidResponse: ``data`` is not an object of the right shape.
    """
    name = what or cls.__name__
    if not isinstance(data, Mapping):
        raise InvalidResponse(f"{name}: expected a JSON object, got {type_name(data)}")
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        raise InvalidResponse(f"invalid {name}", describe_errors(exc)) from None
    except FieldError as exc:
        # Raised by a model's own validator, which names its field.
        raise InvalidResponse(f"invalid {name}", [str(exc)]) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidResponse(f"invalid {name}", [f"value: {_leaf_message(exc)}"]) from None


def loads(text: str | bytes | bytearray, what: str) -> object:
    """Parse JSON, turning a syntax error into InvalidResponse (without quoting the text).

    Raises:
        InvalidResponse: the text is not valid JSON.
    """
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = (
            f"{exc.msg} at position {exc.pos}"
            if isinstance(exc, json.JSONDecodeError)
            else ("not valid UTF-8")
        )
        raise InvalidResponse(f"{what}: not valid JSON ({detail})") from None


def wire_form(value: Any) -> Any:
    """Absent (None) fields left out, enums as their values: what goes on the wire."""
    if isinstance(value, dict):
        return {k: wire_form(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [wire_form(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def unstructure(obj: Any) -> dict[str, Any]:
    result = wire_form(converter.unstructure(obj))
    assert isinstance(result, dict)
    return result


def dumps_compact(value: Any) -> str:
    """JSON the way ``JSON.stringify`` writes it (no spaces), so requests match the JS client."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
