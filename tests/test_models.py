"""The typed models: the types README's shapes, strictness, secrets, and round trips."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import jamsocket_rt as jrt

#: Sans-I/O: no process, socket or server (`pytest -m pure` runs these alone in seconds).
pytestmark = pytest.mark.pure

TOKEN = "tok-SECRET-4b1d"
SECRET = "sec-SECRET-77aa"

RESPONSE: dict[str, Any] = {
    "backend_id": "f7em2",
    "spawned": True,
    "status": "loading",
    "token": TOKEN,
    "url": f"https://abc.jamsocket.run/{TOKEN}/",
    "secret_token": SECRET,
    "status_url": "https://api.jamsocket.com/v2/backend/f7em2/status",
    "ready_url": "https://abc.jamsocket.run/f7em2/ready",
}


def test_connect_response_from_the_types_readme() -> None:
    response = jrt.ConnectResponse.from_dict(RESPONSE)
    assert response.backend_id == "f7em2"
    assert response.spawned is True
    assert response.status is jrt.BackendStatus.LOADING
    assert response.token == TOKEN
    assert response.secret_token == SECRET
    assert response.to_dict() == RESPONSE
    assert jrt.ConnectResponse.from_json(json.dumps(RESPONSE)) == response
    assert jrt.ConnectResponse.from_json(json.dumps(RESPONSE).encode()) == response


def test_dev_server_and_plane_shapes() -> None:
    dev = {**RESPONSE, "ready_url": "", "secret_token": None}
    assert jrt.ConnectResponse.from_dict(dev).ready_url == ""
    plane = {k: v for k, v in RESPONSE.items() if k != "ready_url"}
    plane["drone"] = "drone-1"  # unknown fields are ignored: newer servers must not break us
    assert jrt.ConnectResponse.from_dict(plane).ready_url == ""


def test_secrets_never_show() -> None:
    response = jrt.ConnectResponse.from_dict(RESPONSE)
    for text in (repr(response), str(response), f"{response}", f"{response!r}"):
        assert TOKEN not in text
        assert SECRET not in text
    assert "abc.jamsocket.run" in repr(response)
    bad = {**RESPONSE, "spawned": "yes", "url": 5}
    with pytest.raises(jrt.InvalidResponse) as info:
        jrt.ConnectResponse.from_dict(bad)
    assert TOKEN not in str(info.value)
    # A token of the wrong type is named, never quoted.
    with pytest.raises(jrt.InvalidResponse) as info:
        jrt.ConnectResponse.from_dict({**RESPONSE, "token": ["not", TOKEN]})
    assert "token: expected a string, got an array" in str(info.value)
    assert TOKEN not in str(info.value)


def test_secrets_never_reach_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = jrt.ConnectResponse.from_dict(RESPONSE)
    logging.getLogger("app").info("got %s / %r", response, response)
    assert TOKEN not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"backend_id": None}, "backend_id: expected a string, got null"),
        ({"backend_id": 12}, "backend_id: expected a string, got a number"),
        ({"spawned": "true"}, "spawned: expected a boolean, got a string"),
        ({"spawned": 1}, "spawned: expected a boolean, got a number"),
        ({"status": 3}, "status: expected a string, got a number"),
        ({"url": "ftp://x/t/"}, "url: expected an absolute http:// or https:// URL"),
        ({"url": "not a url"}, "url: expected an absolute http:// or https:// URL"),
        ({"url": "https://host/"}, "url: expected a URL with the token in its path"),
        ({"status_url": "/relative"}, "status_url: expected an absolute http:// or https:// URL"),
        ({"ready_url": "nope"}, "ready_url: expected an absolute http:// or https:// URL"),
        ({"secret_token": 5}, "secret_token: expected a string, got a number"),
        ({"backend_id": "x" * 70_000}, "backend_id: string too long"),
    ],
)
def test_connect_response_bad_fields_are_named(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(jrt.InvalidResponse, match="invalid ConnectResponse") as info:
        jrt.ConnectResponse.from_dict({**RESPONSE, **change})
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, jrt.JamsocketError)


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(jrt.InvalidResponse) as info:
        jrt.ConnectResponse.from_dict({"spawned": "no", "url": "x"})
    errors = info.value.errors
    assert "backend_id: required field is missing" in errors
    assert "spawned: expected a boolean, got a string" in errors
    assert "token: required field is missing" in errors
    assert "status_url: required field is missing" in errors
    assert any(e.startswith("url:") for e in errors)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("[]", "expected a JSON object, got an array"),
        ('"text"', "expected a JSON object, got a string"),
        ("null", "expected a JSON object, got null"),
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not valid"),
    ],
)
def test_non_objects_and_non_json(document: str | bytes, expected: str) -> None:
    with pytest.raises(jrt.InvalidResponse, match=expected):
        jrt.ConnectResponse.from_json(document)


def test_backend_state_variants_from_the_readme() -> None:
    for status in ("scheduled", "loading", "starting", "waiting", "ready"):
        state = jrt.BackendState.from_dict({"status": status, "time": "2024-05-01T10:00:00Z"})
        assert state.status is jrt.BackendStatus(status)
        assert state.is_ready == (status == "ready")
    terminating = jrt.BackendState.from_dict(
        {
            "status": "hard-terminating",
            "time": "2024-05-01T10:00:00Z",
            "termination_reason": "swept",
        }
    )
    assert terminating.is_terminating
    assert terminating.termination_reason is jrt.TerminationReason.SWEPT
    terminated = jrt.BackendState.from_dict(
        {
            "status": "terminated",
            "time": "2024-05-01T10:00:00.123456789Z",
            "termination_reason": None,
            "termination_kind": "hard",
            "exit_error": True,
        }
    )
    assert terminated.is_terminated
    assert terminated.termination_kind is jrt.TerminationKind.HARD
    assert terminated.exit_error is True
    assert terminated.time == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T10:00:00.5Z", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=timezone.utc)),
        (1714557600000, datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        (1714557600000.5, datetime(2024, 5, 1, 10, 0, 0, 500, tzinfo=timezone.utc)),
    ],
)
def test_time_is_timezone_aware_from_iso_or_epoch_ms(value: object, expected: datetime) -> None:
    state = jrt.BackendState.from_dict({"status": "ready", "time": value})
    assert state.time == expected
    assert state.time.tzinfo is not None


@pytest.mark.parametrize("value", ["yesterday", "", True, None, [], "9" * 100, 10**30])
def test_bad_times_are_named(value: object) -> None:
    with pytest.raises(jrt.InvalidResponse, match="time: "):
        jrt.BackendState.from_dict({"status": "ready", "time": value})


def test_unknown_status_and_reason_are_kept_raw() -> None:
    state = jrt.BackendState.from_dict(
        {"status": "hibernating", "time": 0, "termination_reason": "solar_flare"}
    )
    assert state.status == "hibernating"
    assert state.termination_reason == "solar_flare"
    assert not state.is_ready
    assert not state.is_terminated
    assert not state.is_known
    assert state.to_dict()["status"] == "hibernating"


def test_reason_spellings_of_other_type_versions() -> None:
    for spelling in ("keyexpired", "key_expired", "KEY_EXPIRED", "key-expired"):
        state = jrt.BackendState.from_dict(
            {"status": "terminated", "time": 0, "termination_reason": spelling}
        )
        assert state.termination_reason is jrt.TerminationReason.KEY_EXPIRED


def test_termination_kind_is_strict() -> None:
    with pytest.raises(
        jrt.InvalidResponse, match="termination_kind: expected one of 'soft', 'hard'"
    ):
        jrt.BackendState.from_dict(
            {"status": "terminated", "time": 0, "termination_kind": "medium"}
        )


def test_connect_request_serializes_like_the_js_client() -> None:
    assert jrt.ConnectRequest().to_json() == "{}"
    request = jrt.ConnectRequest(
        key="room-1",
        spawn=jrt.SpawnOptions(
            tag="v2",
            lifetime_limit_seconds=600,
            executable=jrt.ExecutableOptions(
                env={"MODE": "test"},
                mount=True,
                resource_limits=jrt.ResourceLimits(memory_limit_bytes=1 << 30),
            ),
        ),
        user="ada",
        auth={"role": "admin", "nested": {"ok": [1, 2]}},
    )
    # What JSON.stringify gives for the same object literal: no spaces, absent fields absent.
    assert request.to_json() == (
        '{"key":"room-1","spawn":{"tag":"v2","lifetime_limit_seconds":600,"executable":'
        '{"mount":true,"env":{"MODE":"test"},"resource_limits":{"memory_limit_bytes":1073741824}}},'
        '"user":"ada","auth":{"role":"admin","nested":{"ok":[1,2]}}}'
    )
    assert jrt.ConnectRequest.from_json(request.to_json()) == request
    assert jrt.ConnectRequest(spawn=False).to_json() == '{"spawn":false}'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"key": 5}, "key: expected a string, got a number"),
        ({"spawn": "yes"}, "spawn: expected a boolean or an object, got a string"),
        ({"spawn": {"max_idle_seconds": "10"}}, "spawn.max_idle_seconds: expected an integer"),
        ({"spawn": {"executable": {"env": {"A": 1}}}}, "spawn.executable.env: expected string"),
        ({"spawn": {"executable": {"mount": 3}}}, "spawn.executable.mount: expected a string or"),
        ({"auth": []}, "auth: expected an object, got an array"),
        ({"user": False}, "user: expected a string, got a boolean"),
    ],
)
def test_connect_request_bad_fields_are_named(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(jrt.InvalidResponse) as info:
        jrt.ConnectRequest.from_dict(data)
    assert expected in str(info.value)


def test_models_are_frozen() -> None:
    state = jrt.BackendState.from_dict({"status": "ready", "time": 0})
    with pytest.raises(AttributeError):
        state.status = "terminated"  # type: ignore[misc]


_names = st.text(min_size=1, max_size=20)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)


@given(
    status=st.sampled_from(list(jrt.BackendStatus)) | _names,
    time=_times,
    reason=st.none() | st.sampled_from(list(jrt.TerminationReason)),
    kind=st.none() | st.sampled_from(list(jrt.TerminationKind)),
    exit_error=st.none() | st.booleans(),
)
def test_backend_state_round_trips(
    status: Any, time: datetime, reason: Any, kind: Any, exit_error: bool | None
) -> None:
    if isinstance(status, str) and not isinstance(status, jrt.BackendStatus):
        with contextlib.suppress(ValueError):
            status = jrt.BackendStatus(status)
    state = jrt.BackendState(
        status=status,
        time=time,
        termination_reason=reason,
        termination_kind=kind,
        exit_error=exit_error,
    )
    again = jrt.BackendState.from_json(state.to_json())
    assert again.time == state.time
    assert again.termination_kind == state.termination_kind
    assert again.exit_error == state.exit_error
    assert again.to_dict() == state.to_dict()


@given(
    key=st.none() | _names,
    user=st.none() | _names,
    idle=st.none() | st.integers(min_value=0, max_value=10**6),
    env=st.none() | st.dictionaries(_names, st.text(max_size=10), max_size=3),
    auth=st.none() | st.dictionaries(_names, st.integers() | st.text(max_size=5), max_size=3),
)
def test_connect_request_round_trips(
    key: str | None,
    user: str | None,
    idle: int | None,
    env: dict[str, str] | None,
    auth: dict[str, Any] | None,
) -> None:
    spawn = jrt.SpawnOptions(max_idle_seconds=idle, executable=jrt.ExecutableOptions(env=env))
    request = jrt.ConnectRequest(key=key, spawn=spawn, user=user, auth=auth)
    assert jrt.ConnectRequest.from_json(request.to_json()) == request
    assert jrt.ConnectRequest.from_dict(json.loads(request.to_json())) == request


def test_time_serializes_as_iso_utc() -> None:
    local = timezone(timedelta(hours=5))
    state = jrt.BackendState(
        status=jrt.BackendStatus.READY, time=datetime(2024, 1, 1, 5, tzinfo=local)
    )
    assert state.to_dict() == {"status": "ready", "time": "2024-01-01T00:00:00Z"}
