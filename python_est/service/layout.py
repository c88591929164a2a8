"""Base64 body layout per client: 64-column lines, or one line for strongSwan (RFC 8951 §3).

RFC 7030 allows either layout, but real clients each decode only one. libest decodes with
OpenSSL's base64 BIO, which silently mangles a line longer than about a thousand characters
(a real /cacerts body), so lines are the default, as in RFC 7030's examples. strongSwan's
`pki --est` 5.9.8 decodes only one line, and its requests carry no User-Agent at all.
"""

from __future__ import annotations

from dataclasses import replace

from python_est import wire
from python_est.messages import HttpResponse

WRAPPED, SINGLE, AUTO = "wrapped", "single", "auto"


def wants_one_line(user_agent: str | None, setting: str) -> bool:
    """Whether a client gets its base64 bodies on one line.

    Args:
        user_agent: the request's User-Agent, None when absent.
        setting: the label's `base64_lines`: wrapped, single or auto.
    """
    if setting != AUTO:
        return setting == SINGLE
    return user_agent is None or "strongswan" in user_agent.lower()


def laid_out(response: HttpResponse, one_line: bool) -> HttpResponse:
    """`response` with its base64 on one line when asked; bodies are built wrapped."""
    if not one_line or not response.body:
        return response
    content_type = response.header("Content-Type") or ""
    if content_type.lower().startswith("multipart/"):
        return replace(response, body=wire.one_line_parts(content_type, response.body))
    if (response.header("Content-Transfer-Encoding") or "").lower() == "base64":
        return replace(response, body=wire.one_line_base64(response.body))
    return response
