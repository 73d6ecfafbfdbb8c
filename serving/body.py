"""A scoring route's body: read as bytes, parsed and validated by the route itself.

FastAPI would parse and validate a body on the event loop before the route runs, so one
5 MB request held every other caller (``/healthz`` included) for half a second. Here a
large body is parsed and validated in the threadpool. Parsing is also stricter than
``json.loads`` alone, and its errors say what a caller needs:

- a body that is not JSON names its position (line, column, character), never a field;
- a key repeated in one object is an error, not the last value silently kept;
- a body sent as anything but JSON is a 415.

Most bodies are decoded by orjson, to the same value (:func:`_decoded`); any body it
reads otherwise, and any that fails validation, goes the exact way above, so every error
reads as before.
"""

from __future__ import annotations

import functools
import json
from typing import Any, get_args, get_origin

import orjson
from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

JSON_MEDIA = "application/json"
JSON_CONTEXT = {"json": True}
"""Validation context of a JSON body: numbers and yes/no answers must be JSON's own, not
text (``serving.schemas``)."""


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def _invalid(reason: str, kind: str = "json_invalid") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body",), "msg": reason, "type": kind}])


def check_media_type(request: Request) -> None:
    """415 unless the body is sent as JSON (``application/json`` or a ``+json`` type)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON_MEDIA and not media.endswith("+json"):
        raise HTTPException(
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the body as {JSON_MEDIA} (got {media or 'no content type'})",
        )


def parse_json(body: bytes) -> Any:
    """The body's JSON value; a 422 ``RequestValidationError`` saying where it fails."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"body is not UTF-8: byte {exc.start} cannot be decoded") from None
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except DuplicateKey as exc:
        raise _invalid(f"body repeats the key {exc.key[:100]!r} in one object: each key may "
                       "appear once", "json_duplicate_key") from None
    except json.JSONDecodeError as exc:
        raise _invalid(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                       f"{exc.colno} (character {exc.pos})") from None
    except RecursionError:
        raise _invalid("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise _invalid(f"body is not valid JSON: {str(exc)[:120]}") from None


def _located(exc: ValidationError, *prefix: Any) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", *prefix, *e["loc"])}
            for e in exc.errors(include_url=False, include_input=False)]


@functools.cache
def _records_field(model: type[BaseModel]) -> tuple[str, type[BaseModel]] | None:
    """A batch's list of records (``leads``, ``deals``, ``accounts``) and their model."""
    for name, info in model.model_fields.items():
        args = get_args(info.annotation)
        if (get_origin(info.annotation) is list and args and isinstance(args[0], type)
                and issubclass(args[0], BaseModel)):
            return name, args[0]
    return None


def _decoded(body: bytes) -> Any:
    """orjson's value of ``body`` where it is the value :func:`parse_json` gives (up to an
    integer past 64 bits, which orjson reads as the float a number field makes of it);
    ``None`` for any other body (NaN, lone surrogates, nesting past orjson's depth), and
    for ``null``, which no batch is.

    orjson keeps a repeated key's last value silently, so the colons are counted: the
    body's are its key-value pairs' plus those its text holds; orjson's compact rewrite of
    the value has the value's pairs' plus the same text's. A repeated key drops a pair
    (and its text), so the counts differ, unless a colon was written ``\\u003a``.
    """
    if b"\\" in body and (b"\\u003a" in body or b"\\u003A" in body):
        return None
    try:
        value = orjson.loads(body)
        again = orjson.dumps(value)
    except orjson.JSONDecodeError:
        return None
    except orjson.JSONEncodeError:  # nested past orjson's writing depth
        return None
    return value if again.count(b":") == body.count(b":") else None


def _validate_decoded(model: type[BaseModel], data: Any) -> Any:
    """``model`` from a decoded body, a record at a time as :func:`validate_body`; a
    ``ValidationError`` for the first record or batch rule it fails."""
    found = _records_field(model)
    if found is None or not isinstance(data, dict) or not isinstance(data.get(found[0]), list):
        return model.model_validate(data, context=JSON_CONTEXT)
    name, record = found
    records = [record.model_validate(item, context=JSON_CONTEXT) for item in data[name]]
    return model.model_validate({**data, name: records}, context=JSON_CONTEXT)


def validate_body(model: type[BaseModel], body: bytes) -> Any:
    """``model`` from the body's bytes; each error located under ``body`` as FastAPI's own
    are, so they read the same.

    The records are validated one at a time (the same rules, the same error locations),
    then the batch around them: one validation call over a 5 MB body holds the
    interpreter for a third of a second, which a server thread cannot interrupt; between
    records it can, so the event loop keeps answering while a big body is read.

    A body orjson decodes (:func:`_decoded`, a fifth of the decoding's cost) is validated
    as it is; one that fails is decoded and validated again the exact way, so a 422 says
    what it said before, every error located.
    """
    data = _decoded(body)
    if data is not None:
        try:
            return _validate_decoded(model, data)
        except ValidationError:
            pass
    data = parse_json(body)
    found = _records_field(model)
    if found is None or not isinstance(data, dict) or not isinstance(data.get(found[0]), list):
        try:
            return model.model_validate(data, from_attributes=True, context=JSON_CONTEXT)
        except ValidationError as exc:
            raise RequestValidationError(_located(exc)) from None
    name, record = found
    errors: list[dict[str, Any]] = []
    records = []
    for i, item in enumerate(data[name]):
        try:
            records.append(record.model_validate(item, from_attributes=True,
                                                context=JSON_CONTEXT))
        except ValidationError as exc:
            errors += _located(exc, name, i)
    try:
        batch = model.model_validate({**data, name: records}, from_attributes=True,
                                     context=JSON_CONTEXT)
    except ValidationError as exc:
        # The records' own errors are above; a list rule (at least one, at most N) still
        # counts every record sent, not the valid ones validated here.
        sent = len(data[name])
        errors += [e for e in _located(exc)
                   if (len(e["loc"]) <= 2 or e["loc"][1] != name or not errors)
                   and not (tuple(e["loc"]) == ("body", name) and e["type"] == "too_short"
                            and sent >= (e.get("ctx") or {}).get("min_length", sent + 1))]
        if errors:
            raise RequestValidationError(errors) from None
        raise  # pragma: no cover - every error is located above
    if errors:
        raise RequestValidationError(errors)
    return batch


@functools.cache
def _nested(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a record that hold records or lists of them (none for an activity)."""
    out = []
    for name, info in model.model_fields.items():
        for kind in (info.annotation, *get_args(info.annotation)):
            if get_origin(kind) is list or (isinstance(kind, type)
                                            and issubclass(kind, BaseModel)):
                out.append(name)
                break
    return tuple(out)


def rows_of(value: Any) -> int:
    """How many rows a validated batch holds: every record in every list, nested ones
    (activities, history, signals, context) included. What the work grows with; counted
    by the lists' lengths, so 48,000 activities cost 16 look-ups, not 48,000."""
    if isinstance(value, BaseModel):
        return sum(rows_of(getattr(value, name)) for name in _nested(type(value)))
    if isinstance(value, list):
        if not value or not isinstance(value[0], BaseModel) or not _nested(type(value[0])):
            return len(value)
        return len(value) + sum(rows_of(v) for v in value)
    return 0


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads ``model`` from its bytes."""
    return {"requestBody": {"required": True, "content": {JSON_MEDIA: {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def with_body_schemas(schema: dict[str, Any], models: list[type[BaseModel]]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document) with the component schemas of ``models``."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        full = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in full.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault(model.__name__, full)
    return schema


__all__ = ["body_schema", "check_media_type", "parse_json", "rows_of", "validate_body",
           "with_body_schemas"]
