"""The fast way a body is read (orjson, the repeated-key count) gives what the exact way
gives: the same decoded value, the same validated batch, or the same 422."""

from __future__ import annotations

import copy
import json
import math
from typing import Any
from unittest import mock

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from serving import body as body_module
from serving.body import _decoded, parse_json, validate_body
from serving.schemas import AccountBatch, DealBatch, LeadBatch


def _exact(model: type[BaseModel], raw: bytes) -> Any:
    """``validate_body`` the way it was before the fast path: ``json.loads`` with the
    duplicate-key hook."""
    with mock.patch.object(body_module, "_decoded", lambda _: None):
        return validate_body(model, raw)


def _outcome(model: type[BaseModel], raw: bytes, fast: bool) -> tuple[str, Any]:
    try:
        batch = validate_body(model, raw) if fast else _exact(model, raw)
    except RequestValidationError as exc:
        return "422", _comparable(exc.errors())
    return "ok", (type(batch), batch.model_dump(), _fields_set(batch))


def _comparable(errors: Any) -> list[dict[str, Any]]:
    """Errors as compared: an error's ``ctx`` holds the exception, compared by its text."""
    return [{**e, "ctx": {k: repr(v) for k, v in e.get("ctx", {}).items()}} for e in errors]


def _fields_set(value: Any) -> Any:
    """What each record of a batch was sent with (``Context.model_fields_set`` is read)."""
    if isinstance(value, BaseModel):
        return (type(value).__name__, sorted(value.model_fields_set),
                {k: _fields_set(v) for k, v in value.__dict__.items()})
    if isinstance(value, list):
        return [_fields_set(v) for v in value]
    if isinstance(value, dict):
        return {k: _fields_set(v) for k, v in value.items()}
    return (type(value).__name__, getattr(value, "tzinfo", None))


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of the same types throughout (1 is not 1.0, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                     == math.copysign(1, b))
    return bool(a == b)


def _parsed(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse_json(raw)
    except RequestValidationError as exc:
        return "422", _comparable(exc.errors())


# -- decoding ---------------------------------------------------------------------------

_text = st.lists(st.characters(codec="utf-8") | st.sampled_from(
    ['"', "\\", ":", '":', "\x00", "\ud800", "\udc00", "é", "\u2028", " :", "\t"]),
    max_size=6).map("".join)
_json_values = st.recursive(
    st.none() | st.booleans() | _text
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """JSON texts as clients write them (ASCII-escaped or not, spaced or not), sometimes
    with a key repeated in one object or a byte cut or changed."""
    value = draw(_json_values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")])))
    raw = text.encode("utf-8", "surrogatepass")
    edit = draw(st.sampled_from(["none", "repeat", "cut", "byte"]))
    if edit == "repeat" and b"{" in raw:
        at = raw.index(b"{") + 1
        key = json.dumps(draw(_text), ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass")
        pair = key + b":" + draw(st.sampled_from([b"1", b'"x:y"', b"{}", b"[1]", b"null"]))
        raw = raw[:at] + pair + b"," + pair + (b"," if raw[at:at + 1] != b"}" else b"") + raw[at:]
    elif edit == "cut" and raw:
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    elif edit == "byte" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1:]
    return raw


@given(_bodies())
@settings(max_examples=400, deadline=None)
def test_fast_decoding_gives_the_exact_value_or_leaves_the_body_to_it(raw: bytes) -> None:
    fast = _decoded(raw)
    exact = _parsed(raw)
    if fast is not None:
        assert exact[0] == "ok", (raw, exact)
        assert _same_value(fast, exact[1]), raw


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "a": 2}',
    b'{"a": {"b": "x:y", "b": "z"}}',
    b'{"t": "12:00", "t": "12:00"}',
    b'{"a\\u003a": 1, "a\\u003a": 2, "b": ":"}',
    b'{"a" : 1 , "a" : 2}',
    b'[{"k": 1}, {"k": 2, "k": 3}]',
])
def test_a_repeated_key_is_never_read_fast(raw: bytes) -> None:
    assert _decoded(raw) is None
    assert _parsed(raw)[0] == "422"


@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}', b'{"a": "\\ud800"}',
    b'{"a": "\\udc00x"}', b"\xef\xbb\xbf{}", b'{"a": "\xff"}',
    b"[" * 300 + b"]" * 300, b"[" * 2000 + b"]" * 2000, b"", b"{", b"null",
])
def test_what_orjson_reads_otherwise_goes_the_exact_way(raw: bytes) -> None:
    assert _decoded(raw) is None


def test_a_batch_body_is_read_fast() -> None:
    raw = json.dumps({"leads": [{"lead_id": "L1", "created_at": "2024-09-01T00:00:00Z",
                                 "title": "VP, Sales: EMEA"}]}).encode()
    assert _decoded(raw) == json.loads(raw)


# -- validating -------------------------------------------------------------------------

_ACTIVITY = {"activity_id": "A1", "occurred_at": "2024-09-02T10:00:00+02:00",
             "type": "email_sent", "direction": "outbound", "contact_id": "C1"}
_LEAD = {"lead_id": "L1", "account_id": "AC1", "created_at": "2024-09-01T00:00:00Z",
         "source": "webinar", "title": "VP Sales", "employees": 250, "budget_confirmed": True,
         "timeline_days": 30, "attributes": {"tier": "gold", "score": 1.5},
         "activities": [_ACTIVITY],
         "field_history": [{"changed_at": "2024-09-03T00:00:00Z", "field": "employees",
                            "old_value": "200", "new_value": "250"}]}
_DEAL = {"opportunity_id": "O1", "account_id": "A1", "owner_id": "U1",
         "created_at": "2024-08-01T00:00:00Z", "amount": 1000.0, "is_won": None,
         "history": [{"changed_at": "2024-08-01T00:00:00Z", "stage": "prospecting",
                      "amount": 1000}],
         "activities": [_ACTIVITY]}
_ACCOUNT = {"account_id": "A1", "created_at": "2023-01-01T00:00:00Z", "employees": 40,
            "signals": [{"signal_id": "S1", "observed_at": "2024-09-01T00:00:00Z",
                         "signal": "nps", "value": 9}],
            "deals": [{"opportunity_id": "O1", "created_at": "2023-01-01T00:00:00Z",
                       "is_won": True, "closed_at": "2023-02-01T00:00:00Z"}]}
_CONTEXT = {"accounts": [{"account_id": "AC1", "created_at": "2023-01-01T00:00:00Z"}],
            "opportunities": [], "activities": [_ACTIVITY]}

_ODD_VALUES = st.sampled_from([
    None, "", "x", "250", "true", "a\x00b", "\ud800", "é:ü", 0, 1, -1, 2.0, 2.5, 1e300,
    2**70, True, False, [], {}, [1], {"a": 1}, "2024-09-01", "2024-09-01T00:00:00",
    "2024-09-01T23:30:00-11:00", "0001-01-01T00:00:00+05:00", "2300-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z", 1725148800, "x" * 129, "x" * 257, "webinar_attended", "inbound",
    "negotiation", "closed_won", "employees", "nps",
])


@st.composite
def _batches(draw: st.DrawFn) -> tuple[type[BaseModel], bytes]:
    """A valid lead, deal or account batch with a few values swapped for odd ones, a key
    added or dropped, written as JSON, sometimes with a key repeated."""
    model, key, record = draw(st.sampled_from([
        (LeadBatch, "leads", _LEAD), (DealBatch, "deals", _DEAL),
        (AccountBatch, "accounts", _ACCOUNT)]))
    data: Any = json.loads(json.dumps({key: [record, {**record}], "context": _CONTEXT}))
    for _ in range(draw(st.integers(0, 3))):
        target = data
        path = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4))
        for step in path:
            if isinstance(target, dict) and target:
                name = sorted(target)[step % len(target)]
                if not isinstance(target[name], dict | list) or not target[name]:
                    break
                target = target[name]
            elif isinstance(target, list) and target:
                if not isinstance(target[step % len(target)], dict | list):
                    break
                target = target[step % len(target)]
        if isinstance(target, dict):
            name = draw(st.sampled_from(sorted(target) + ["extra_field"]))
            if draw(st.booleans()) or name == "extra_field":
                # A copy: the odd containers are shared, and one put inside itself (or
                # changed by a later draw) would make the strategy recurse or differ on replay.
                target[name] = copy.deepcopy(draw(_ODD_VALUES))
            else:
                target.pop(name, None)
    raw = json.dumps(data, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        raw = raw.replace(b'"lead_id": ', b'"lead_id": "L9", "lead_id": ', 1).replace(
            b'"stage": ', b'"stage": "x", "stage": ', 1)
    return model, raw


@given(_batches())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_fast_path_validates_as_the_models_do(case: tuple[type[BaseModel], bytes]) -> None:
    model, raw = case
    assert _outcome(model, raw, fast=True) == _outcome(model, raw, fast=False)


@pytest.mark.parametrize("change", [
    {"employees": 250.0}, {"employees": True}, {"budget_confirmed": 1},
    {"budget_confirmed": "true"}, {"created_at": 1725148800},
    {"title": "a\u0000b"}, {"attributes": {"n": 2**70}}, {"lead_id": "x" * 200},
])
def test_a_body_that_fails_validation_gets_the_exact_answer(change: dict[str, Any]) -> None:
    raw = json.dumps({"leads": [{**_LEAD, **change}]}).encode()
    assert _outcome(LeadBatch, raw, fast=True) == _outcome(LeadBatch, raw, fast=False)


def test_timestamps_come_out_in_utc_either_way() -> None:
    raw = json.dumps({"leads": [_LEAD]}).encode()
    fast = validate_body(LeadBatch, raw)
    assert fast.leads[0].activities[0].occurred_at.isoformat() == "2024-09-02T08:00:00+00:00"
    assert _fields_set(fast) == _fields_set(_exact(LeadBatch, raw))
