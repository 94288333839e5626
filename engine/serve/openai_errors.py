"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status.

Clients such as the ``openai`` package turn the status into an exception (400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 429 RateLimitError) and show the message, so every failure a
client can cause ends here as one sentence, never as a 500 with a traceback.
"""

from __future__ import annotations

import sys
import traceback

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """An error answered to the client: HTTP ``status`` plus OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.close = close  # answered with "Connection: close" (the rest of the request is not read)

    def headers(self) -> dict[str, str]:
        out = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        if self.close:
            out["Connection"] = "close"
        return out

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _param(loc) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def validation_error(errors: list[dict]) -> APIError:
    """The first pydantic/FastAPI validation problem as one sentence naming the field."""
    if not errors:
        return APIError(400, "the request body is not valid.")
    err = errors[0]
    param = _param(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "json_invalid":
        return APIError(400, "the request body is not valid JSON.", code="invalid_json")
    if kind == "missing":
        return APIError(400, f"'{param}' is required.", param=param, code="missing_required_parameter")
    msg = str(err.get("msg", "is not valid")).rstrip(".")
    where = f"'{param}'" if param else "the request body"
    if kind.startswith(("model_attributes", "dict_type", "model_type")) and not param:
        return APIError(400, "the request body must be a JSON object.", code="invalid_type")
    return APIError(400, f"{where}: {msg[:1].lower() + msg[1:]}.", param=param, code="invalid_value")


def install_error_handlers(app) -> None:
    """Turn every exception a request can raise into OpenAI's error shape."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from engine.errors import UserError

    def answer(err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers() or None)

    @app.exception_handler(APIError)
    async def _api(request, exc: APIError):
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        return answer(validation_error(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        if exc.status_code == 404:
            return answer(APIError(404, f"no such endpoint: {request.method} {request.url.path}.", code="not_found"))
        if exc.status_code == 405:
            return answer(
                APIError(405, f"{request.method} is not allowed on {request.url.path}.", code="method_not_allowed")
            )
        return answer(APIError(exc.status_code, str(exc.detail)))

    @app.exception_handler(UserError)
    async def _user(request, exc: UserError):
        return answer(APIError(400, str(exc)))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        # A bug: the traceback goes to the server's stderr, the client gets one sentence.
        traceback.print_exception(exc, file=sys.stderr)
        return answer(
            APIError(500, "the server failed to answer this request; its log has the details.", code="internal_error")
        )
