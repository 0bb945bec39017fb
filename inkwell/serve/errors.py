"""API errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the right status."""

from __future__ import annotations

from inkwell.errors import InkwellError

# Inkwell setting names -> the OpenAI request field a client sent.
PARAM_NAMES = {"max_new_tokens": "max_tokens", "min_new_tokens": "min_tokens", "num_return_sequences": "n"}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}
        self.extra = extra or {}  # more keys of the error object (e.g. a moderation block's category)

    def body(self) -> dict:
        return {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code, **self.extra}
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def from_inkwell(exc: InkwellError) -> APIError:
    """A user error from the engine/templates: 400, naming the request field it concerns."""
    param = PARAM_NAMES.get(exc.field or "", exc.field)
    return APIError(400, str(exc).replace("\n  fix: ", "; fix: "), param=param, code="invalid_value")


def moderation_blocked(exc) -> APIError:
    """422 for a `ModerationBlocked` (inkwell.safety): OpenAI's error shape plus the guard's extra keys
    (`category`, `categories`, `direction`, `policy`); the message names the category."""
    error = dict(exc.to_response()["error"])
    message, type_, param, code = (error.pop(k) for k in ("message", "type", "param", "code"))
    return APIError(exc.status_code, message, type=type_, param=param, code=code, extra=error)


def unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def model_not_found(name: str, known: list[str]) -> APIError:
    return APIError(
        404,
        f"The model '{name}' does not exist; this server has: {', '.join(known)}",
        param="model",
        code="model_not_found",
    )


def too_many(message: str, retry_after: float, code: str) -> APIError:
    seconds = max(1, int(-(-retry_after // 1)))  # Retry-After is whole seconds, rounded up
    return APIError(
        429,
        message,
        type="rate_limit_exceeded" if code == "rate_limit_exceeded" else "server_busy",
        code=code,
        headers={"Retry-After": str(seconds)},
    )


def unavailable(message: str) -> APIError:
    return APIError(503, message, type="server_unavailable", code="model_loading", headers={"Retry-After": "5"})


def internal() -> APIError:
    """Engine failures: the body says only that it failed (details go to the server log)."""
    return APIError(
        500,
        "The server failed to generate a response. The error was logged; try again.",
        type="server_error",
        code="internal_error",
    )
