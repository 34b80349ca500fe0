"""The command line's value checks for the platform flags: each returns None for a bad value,
which :func:`argument_type` turns into argparse's error naming the flag."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .._errors import ConfigurationError
from ..protocol._requests import check_base_url
from ..protocol.proxy import parse_proxy

__all__ = ["argument_type", "port_number", "proxy_flag", "url"]

T = TypeVar("T")


def port_number(text: str) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        return None
    return int(text)


def argument_type(check: Callable[[str], T | None], expected: str) -> Callable[[str], T]:
    """``check`` as an argparse type: None from it becomes argparse's error naming the flag."""
    import argparse  # only the command line needs it, not ``import jamsocket_rt``

    def convert(text: str) -> T:
        value = check(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"expected {expected}")
        return value

    return convert


def url(text: str) -> str | None:
    try:
        return check_base_url(text.strip(), "URL")
    except ConfigurationError:
        return None


def proxy_flag(text: str) -> str | bool | None:
    if text.strip().lower() in ("off", "none", "no", "false", "direct"):
        return False
    try:
        parse_proxy(text)
    except ConfigurationError:
        return None
    return text.strip()
