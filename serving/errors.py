"""Every error the API can give, as JSON, mapped in one place.

Validation failures become a 422 listing each offending field's dotted path and the
reason, without echoing the input back (a 20 MB body must not come back in the error).
Anything unexpected becomes a bare 500 with the request id, never a stack trace: the
trace goes to the log, where the request id finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.logs import request_id_var

log = logging.getLogger("leadscore.serving.errors")

MAX_LISTED_ERRORS = 50


class ModelUnavailable(Exception):
    """No model is loaded for the task the request needs."""

    def __init__(self, task: str, withheld: str | None = None) -> None:
        super().__init__(task)
        self.task = task
        self.withheld = withheld
        """Why no version serves, when the promotion gate withheld the task."""


def _printable(text: str, limit: int = 300) -> str:
    """Safe to put in a JSON response: valid UTF-8 (lone surrogates replaced), bounded."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "leads", 0, "created_at")`` -> ``"leads.0.created_at"``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if len(parts) > 1 else parts
    # An empty key (``{"": 1}``) still needs a visible name in the path.
    path = ".".join('""' if p == "" else str(p) for p in parts)
    return _printable(path or "body")


def validation_items(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Field path, reason and type of each validation error (input never echoed)."""
    items = []
    for err in errors[:MAX_LISTED_ERRORS]:
        reason = _printable(str(err.get("msg", "invalid value")).removeprefix("Value error, "))
        if err.get("type") == "json_invalid" and err.get("ctx"):  # FastAPI's own
            ctx = err.get("ctx") or {}
            reason = _printable(f"body is not valid JSON: {ctx.get('error', 'parse error')}")
        items.append(
            {
                "field": field_path(err.get("loc", ("body",))),
                "reason": reason,
                "type": str(err.get("type", "value_error")),
            }
        )
    return items


def error_response(
    status: int, error: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": error, "detail": detail, "request_id": request_id_var.get()}
    return JSONResponse(body, status_code=status, headers=headers)


def _status_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    items = validation_items(errors)
    if len(errors) > len(items):
        items.append(
            {
                "field": "body",
                "reason": f"{len(errors) - len(items)} more errors not listed",
                "type": "truncated",
            }
        )
    return error_response(422, "validation_error", items)


_UNPARSABLE = "There was an error parsing the body"


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE:
        # Bodies json.loads cannot take (bad UTF-8, nesting past the recursion limit).
        item = {"field": "body", "reason": "body is not UTF-8 JSON that can be parsed",
                "type": "json_invalid"}
        return error_response(422, "validation_error", [item])
    return error_response(
        exc.status_code,
        _status_name(exc.status_code),
        exc.detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelUnavailable)
    if exc.withheld:
        return error_response(503, "model_withheld", f"{exc.task} is not served: {exc.withheld}")
    return error_response(
        503, "model_unavailable", f"no model is loaded for {exc.task}", {"Retry-After": "5"}
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return error_response(500, "internal_error", "internal error; the log has the request id")


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception the app can raise to a JSON response."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(ModelUnavailable, _on_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)
