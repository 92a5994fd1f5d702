"""API errors: every failure leaves the service as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any, Dict, Optional

STATUS_BY_CODE: Dict[str, int] = {
    "invalid_argument": 400,
    "unauthorized": 401,
    "not_found": 404,
    "conflict": 409,
    "not_allowed": 409,
    "internal": 500,
}


class ApiError(Exception):
    """An error with a stable machine-readable code and a message for people.

    Attributes:
        code: one of :data:`STATUS_BY_CODE`.
        message: explanation (Chinese when it may be shown to a shopper).
        status: HTTP status; derived from ``code`` unless given.
        reason: a finer machine-readable reason of a refusal (e.g. ``window_passed``), or empty.
        details: facts of the refusal a caller may show (e.g. when a window ended), or None.
    """

    def __init__(self, code: str, message: str, status: int = 0, reason: str = "", details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_BY_CODE.get(code, 400)
        self.reason = reason
        self.details = details

    def to_json(self) -> Dict[str, Any]:
        """The JSON body of the error response (with ``reason`` and ``details`` where the operation gives them)."""
        body: Dict[str, Any] = {"code": self.code, "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


def invalid(message: str) -> ApiError:
    """400: the request is malformed."""
    return ApiError("invalid_argument", message)


def unprocessable(message: str) -> ApiError:
    """422: well-formed, but refers to things that do not fit together (e.g. a line of another order)."""
    return ApiError("invalid_argument", message, 422)


def not_found(message: str) -> ApiError:
    """404: the resource does not exist."""
    return ApiError("not_found", message)


def not_allowed(message: str) -> ApiError:
    """409: the action is not allowed in the resource's current state."""
    return ApiError("not_allowed", message)


def conflict(message: str) -> ApiError:
    """409: e.g. an idempotency key reused for a different request."""
    return ApiError("conflict", message)
