"""Websocket masking: aiohttp's compiled function, and the fallback used without it."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsocket_rt.protocol import websocket

pytestmark = pytest.mark.pure


def _mask_bytewise(mask: bytes, data: bytes) -> bytes:
    return bytes(byte ^ mask[i & 3] for i, byte in enumerate(data))


def test_the_compiled_masking_of_aiohttp_still_loads() -> None:
    # A private module of aiohttp: if a release moves it, this fails (and the fallback is used).
    helpers = importlib.import_module("aiohttp._websocket.helpers")
    assert websocket._mask_in_place is helpers.websocket_mask


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=2000))
def test_the_fallback_masks_as_rfc_6455_says(mask: bytes, data: bytes) -> None:
    fallback = bytearray(data)
    websocket.mask_python(mask, fallback)
    compiled = bytearray(data)
    websocket._mask_in_place(mask, compiled)
    assert bytes(fallback) == bytes(compiled) == _mask_bytewise(mask, data)
