"""Typed errors of the unified patron API.

Every error the gateway can answer with is a ``GatewayError`` subclass carrying its
HTTP ``status`` and machine-readable ``code`` as class data (the table of API.md).
One Flask handler (``gateway.app``) renders any of them as ``application/problem+json``.
Adapters raise these too; the gateway never has to translate an adapter's error.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://opac-gateway.dev/problems/"


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        library: str | None = None,
        retry_after: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.library = library
        self.retry_after = retry_after
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def with_library(self, library: str) -> GatewayError:
        if self.library is None:
            self.library = library
        return self

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.library:
            body["library"] = self.library
        for key, value in self.extra.items():
            if key not in body:
                body[key] = value
        return body

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{type(self).__name__}({self.detail!r}, library={self.library!r})"


class InvalidRequest(GatewayError):
    status, code, title = 400, "invalid_request", "Invalid request"


class ClientUnauthorized(GatewayError):
    status, code, title = 401, "client_unauthorized", "Client not authorized"


class Unauthenticated(GatewayError):
    status, code, title = 401, "unauthenticated", "Session token missing, unknown or expired"


class InvalidCredentials(GatewayError):
    status, code, title = 401, "invalid_credentials", "The library rejected the card number or password"


class LibraryNotInSession(GatewayError):
    status, code, title = 403, "library_not_in_session", "The session holds no account at this library"


class AccountBlocked(GatewayError):
    status, code, title = 403, "account_blocked", "The library refuses this action for this patron"


class NotFound(GatewayError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(GatewayError):
    """The path exists, but not with this method; ``allow`` lists the methods (``Allow`` header)."""

    status, code, title = 405, "method_not_allowed", "Method not allowed"

    def __init__(self, detail: str | None = None, *, allow: list[str] | None = None, **kw: Any) -> None:
        super().__init__(detail, allow=allow, **kw)


class UnsupportedMediaType(GatewayError):
    status, code, title = 415, "unsupported_media_type", "The body must be application/json in UTF-8"


class PasswordChangeRequired(GatewayError):
    status, code, title = 409, "password_change_required", "The library requires a password change"


class Conflict(GatewayError):
    status, code, title = 409, "conflict", "Conflict"


class CardNumberInvalid(GatewayError):
    status, code, title = 422, "card_number_invalid", "Not a valid card number for this library"


class PasswordPolicyViolation(GatewayError):
    status, code, title = 422, "password_policy_violation", "The new password breaks the library's policy"


class NotRenewable(GatewayError):
    status, code, title = 422, "not_renewable", "The loan cannot be renewed"
    REASONS: ClassVar[frozenset[str]] = frozenset(
        {"overdue", "reserved", "already_renewed", "renewal_limit", "not_yet", "other"}
    )

    def __init__(self, detail: str | None = None, *, reason: str = "other", **kw: Any) -> None:
        if reason not in self.REASONS:
            reason = "other"
        super().__init__(detail, reason=reason, **kw)

    @property
    def reason(self) -> str:
        return str(self.extra["reason"])


class LimitExceeded(GatewayError):
    status, code, title = 422, "limit_exceeded", "A size limit was exceeded"


class RateLimited(GatewayError):
    status, code, title = 429, "rate_limited", "Too many requests"


class NotSupported(GatewayError):
    status, code, title = 501, "not_supported", "The library's system does not offer this"


class UpstreamChanged(GatewayError):
    status, code, title = 502, "upstream_changed", "The library's answer could not be understood"


class UpstreamError(GatewayError):
    status, code, title = 502, "upstream_error", "The library answered with an error"


class UpstreamUnavailable(GatewayError):
    status, code, title = 503, "upstream_unavailable", "The library's system is unavailable"


class UpstreamUnreachable(UpstreamUnavailable):
    """503 upstream_unavailable: no answer at all (connection refused or reset, DNS, a broken
    exchange).  With ``UpstreamTimeout`` the only failures a library's circuit counts: an
    HTTP error page is an answer, and odd input from one client can provoke one."""


class UpstreamMaintenance(GatewayError):
    status, code, title = 503, "upstream_maintenance", "The library's system is in its maintenance window"


class UpstreamTimeout(GatewayError):
    status, code, title = 504, "upstream_timeout", "The library's system did not answer in time"


class InternalError(GatewayError):
    status, code, title = 500, "internal_error", "Internal error"


class SessionExpired(Exception):
    """Raised by an adapter when the upstream session is gone (redirect to login).

    Never reaches a client: the gateway logs in again and repeats a read, or
    re-reads state before repeating a write.
    """


ALL_ERRORS: tuple[type[GatewayError], ...] = (
    InvalidRequest,
    ClientUnauthorized,
    Unauthenticated,
    InvalidCredentials,
    LibraryNotInSession,
    AccountBlocked,
    NotFound,
    MethodNotAllowed,
    UnsupportedMediaType,
    PasswordChangeRequired,
    Conflict,
    CardNumberInvalid,
    PasswordPolicyViolation,
    NotRenewable,
    LimitExceeded,
    RateLimited,
    NotSupported,
    UpstreamChanged,
    UpstreamError,
    UpstreamUnavailable,
    UpstreamMaintenance,
    UpstreamTimeout,
)


def error_from_problem(problem: dict[str, Any]) -> GatewayError:
    """Rebuild a typed error from a stored problem body (idempotency replays, batch results)."""
    code = problem.get("code")
    for cls in ALL_ERRORS:
        if cls.code == code:
            extra = {
                k: v
                for k, v in problem.items()
                if k not in {"type", "title", "status", "code", "detail", "library"}
            }
            err = cls.__new__(cls)
            GatewayError.__init__(err, problem.get("detail"), library=problem.get("library"), **extra)
            return err
    return InternalError(problem.get("detail"))
