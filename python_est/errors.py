"""The error tree. Each HTTP-facing error carries its status and a detail safe to show a client.

`detail` never holds a traceback, a file path or a secret. `server` is the one place that turns an
`EstError` into a response; anything else escaping a handler is a bug and becomes a bare 500.
"""

from __future__ import annotations


class EstError(Exception):
    """Base of every error that maps to an HTTP response."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Extra response headers this error requires (challenge, Allow, Retry-After)."""
        return ()


class BadRequest(EstError):
    status = 400
    title = "Bad Request"


class MalformedBody(BadRequest):
    """The body is not base64 of one DER object (RFC 8951 §3)."""


class InvalidCsr(BadRequest):
    """The body decodes but is not an acceptable PKCS#10 request."""


class AuthenticationRequired(EstError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str = "", *, basic_realm: str | None = None) -> None:
        super().__init__(detail)
        self.basic_realm = basic_realm

    def headers(self) -> tuple[tuple[str, str], ...]:
        if self.basic_realm is None:
            return ()
        return (("WWW-Authenticate", f'Basic realm="{self.basic_realm}", charset="UTF-8"'),)


class Forbidden(EstError):
    status = 403
    title = "Forbidden"


class NotFound(EstError):
    status = 404
    title = "Not Found"


class MethodNotAllowed(EstError):
    status = 405
    title = "Method Not Allowed"

    def __init__(self, detail: str = "", *, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.allowed = allowed

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Allow", ", ".join(self.allowed)),)


class PayloadTooLarge(EstError):
    status = 413
    title = "Payload Too Large"


class UnsupportedMediaType(EstError):
    status = 415
    title = "Unsupported Media Type"


class _RetryLater(EstError):
    """An error that tells the client when to try again (`Retry-After`, delta-seconds)."""

    default_retry_after = 30

    def __init__(self, detail: str = "", *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", str(self.retry_after)),)


class TooManyRequests(_RetryLater):
    status = 429
    title = "Too Many Requests"
    default_retry_after = 60


class HeaderFieldsTooLarge(EstError):
    status = 431
    title = "Request Header Fields Too Large"


class InternalError(EstError):
    status = 500
    title = "Internal Server Error"


class CaError(InternalError):
    """The CA could not sign (missing or broken key material)."""


class LedgerError(InternalError):
    """The ledger could not record or read a certificate."""


class NotImplementedOperation(EstError):
    status = 501
    title = "Not Implemented"


class Unavailable(_RetryLater):
    status = 503
    title = "Service Unavailable"


class ConfigError(Exception):
    """A configuration problem; the CLI prints it as one line and exits with status 2."""

    def __init__(self, file: str, section: str | None, key: str | None, problem: str) -> None:
        where = file
        if section is not None:
            where += f": [{section}]"
            if key is not None:
                where += f" {key}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.section = section
        self.key = key
        self.problem = problem


class HandshakeFailed(Exception):
    """A TLS handshake did not complete; logged and the connection closed, no response sent."""


class UserStoreError(Exception):
    """The SRP user store is unreadable, malformed or could not be written."""


class BadGateway(EstError):
    """An issuing backend (upstream EST server, CA handler) failed or answered nonsense."""

    status = 502
    title = "Bad Gateway"
