"""Request and response values, EST operations, media types and the `/.well-known/est` paths."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from python_est.errors import EstError, NotFound

WELL_KNOWN = "/.well-known/est"

# Exact spellings matter: the libest client prefix-compares these byte for byte
# (../shared/notes/client-interop.md).
PKCS7_MIME = "application/pkcs7-mime"
CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
PKCS10 = "application/pkcs10"
CSRATTRS = "application/csrattrs"
PKCS8 = "application/pkcs8"
TEXT_PLAIN = "text/plain; charset=utf-8"
TEXT_HTML = "text/html; charset=utf-8"

# RFC 7030 §3.2.2: a label is one RFC 3986 path segment: unreserved, sub-delims, ':', '@' and
# percent-encoded octets (§3.3 pchar). Deployments use ':' (Aruba ClearPass: `ca:1`).
_SEGMENT_RE = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+")
MAX_LABEL = 128


class Operation(enum.Enum):
    CACERTS = "cacerts"
    SIMPLEENROLL = "simpleenroll"
    SIMPLEREENROLL = "simplereenroll"
    SERVERKEYGEN = "serverkeygen"
    CSRATTRS = "csrattrs"
    FULLCMC = "fullcmc"

    @property
    def method(self) -> str:
        """The one HTTP method RFC 7030 §3.2.4/§4 defines for the operation."""
        return "GET" if self in (Operation.CACERTS, Operation.CSRATTRS) else "POST"


OPERATION_NAMES = frozenset(op.value for op in Operation)


@dataclass(frozen=True)
class EstPath:
    """A parsed `/.well-known/est[/label]/operation` path; label "" is the default profile."""

    label: str
    operation: Operation


def parse_est_path(raw_path: str) -> EstPath:
    """Parse the request target of an EST request.

    The label is returned percent-decoded: `ca%3A1` and `ca:1` name the same label.

    Raises:
        NotFound: not under the well-known prefix, unknown operation, bad or extra segments.
    """
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith(WELL_KNOWN + "/"):
        raise NotFound(f"no such resource: {_printable(path)}")
    segments = path[len(WELL_KNOWN) + 1 :].split("/")
    if len(segments) == 1:
        label, op_name = "", unquote(segments[0])
    elif len(segments) == 2:
        # §3.2.2: exactly one optional segment, which must not be an operation name.
        problem = _segment_problem(segments[0]) or label_problem(unquote(segments[0], "utf-8"))
        if problem is not None:
            raise NotFound(f"invalid CA label {_printable(segments[0])}: {problem}")
        label, op_name = unquote(segments[0]), unquote(segments[1])
    else:
        raise NotFound("EST paths have at most one label segment")
    try:
        operation = Operation(op_name)
    except ValueError:
        raise NotFound(f"unknown EST operation: {_printable(op_name)}") from None
    return EstPath(label=label, operation=operation)


def label_segment(label: str) -> str:
    """`label` as a path segment: percent-encoded where it is not an RFC 3986 pchar."""
    return quote(label, safe="!$&'()*+,;=:@~")


def _segment_problem(raw: str) -> str | None:
    if not _SEGMENT_RE.fullmatch(raw):
        return "not an RFC 3986 path segment"
    try:
        unquote(raw, "utf-8", "strict")
    except UnicodeDecodeError:
        return "percent-encoding is not UTF-8"
    return None


def label_problem(label: str) -> str | None:
    """Why `label` (percent-decoded) cannot be a CA label, or None when it can.

    Shared by the path parser and the config loader, so every configured label is reachable
    and nothing else is.
    """
    if not 1 <= len(label) <= MAX_LABEL:
        return f"1 to {MAX_LABEL} characters"
    if label in {".", ".."}:
        return "a dot segment (RFC 3986 §5.2.4)"
    if label in OPERATION_NAMES:
        return "an EST operation name (RFC 7030 §3.2.2)"
    if "/" in label or "\\" in label:
        return "contains a slash"  # encoded (%2F) or, in the config, literal
    if not all(ch.isprintable() and not ch.isspace() for ch in label):
        return "contains white space or control characters"
    return None


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` among `headers` whose names are lower-cased, or None."""
    wanted = name.lower()
    for key, value in headers:
        if key == wanted:
            return value
    return None


def _printable(text: str) -> str:
    """Shorten and neutralise client text before echoing it in an error detail."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned[:80] + ("..." if len(cleaned) > 80 else "")


@dataclass(frozen=True)
class HttpRequest:
    """One parsed HTTP/1.1 request. Header names are lower-cased; values keep their case."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True)
class HttpResponse:
    """A response as it will go on the wire. Header names keep their exact case."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    # Audit facts for the connection log line (never sent).
    note: str = field(default="", compare=False)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


def error_response(err: EstError) -> HttpResponse:
    """The text/plain response for `err`: one line, its status and the headers it requires."""
    detail = " ".join(err.detail.split())
    text = err.title if detail in ("", err.title) else f"{err.title}: {detail}"
    return text_response(err.status, text, err.headers())


def bare_challenge(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    """`response` without a body when it is a 401 challenge to a client without User-Agent.

    Bouncy Castle's EST client (which sends no User-Agent) closes a 401 without reading it and
    then fails on any body of more than one byte, so it can never send its credentials. Clients
    that name themselves keep the reason text; the server log keeps it for everyone.
    """
    if (
        response.status != 401
        or response.header("WWW-Authenticate") is None
        or request.header("user-agent") is not None
    ):
        return response
    headers = tuple((k, v) for k, v in response.headers if k.lower() != "content-type")
    return HttpResponse(401, headers, b"", note=response.note)


def text_response(
    status: int, text: str, headers: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    """A short plain-text response (RFC 8951 §5 allows text/plain for errors)."""
    body = (text.rstrip("\n") + "\n").encode("utf-8")
    return HttpResponse(status=status, headers=(("Content-Type", TEXT_PLAIN), *headers), body=body)
