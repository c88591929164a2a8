"""Cross-site request forgery defence of the bootstrap page (issue 13 item 7).

A form on another site must not be able to make a visitor's browser submit the page. Three
checks, cheapest first, all before the form's credentials or CSR are looked at:

1. `Sec-Fetch-Site` (Fetch Metadata), when sent, must be `same-origin`.
2. `Origin` (RFC 6454 §7), when sent, must be this page's own origin: `https://` + `Host`
   (`null` only together with a same-origin `Sec-Fetch-Site`).
3. A browser's POST must carry a form token bound to a cookie. The token is stateless:
   `<unix time>.<HMAC-SHA256(secret, path | cookie nonce | time)>`, valid for `TOKEN_LIFETIME`.
   The nonce sits in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict, RFC 6265bis
   §4.1.3.2), which another site can neither read nor set, so a token fetched by an attacker
   is useless in the visitor's browser. The secret is derived from the CA key
   (`derive_form_secret`), so every worker process and every reload accept each other's tokens.

A request is a browser's when it carries `Origin`, any `Sec-Fetch-*` header, or a `User-Agent`
starting with `Mozilla/` (every browser's, old ones included, which send no `Origin` on a
same-origin POST). A browser cannot be made to drop all of these on a cross-site request:
a form sends its own User-Agent, and `fetch` sends `Origin`. Scripts (curl, the EST client)
send none of them and need no token: forgery needs a victim's browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from python_est.ca import CaKey, sign_bytes
from python_est.errors import Forbidden
from python_est.messages import HttpRequest

COOKIE = "__Host-python-est-form"
TOKEN_FIELD = "form_token"
TOKEN_LIFETIME = 2 * 3600  # seconds: a person filling in the form may take a while
_CLOCK_SKEW = 300  # seconds a token may be ahead of this process's clock
_NONCE_BYTES = 16
_MAC_BYTES = 16
_SECRET_INFO = b"python-est bootstrap form token v1"


def derive_form_secret(ca_key: CaKey) -> bytes | None:
    """A 32-byte token secret every process holding `ca_key` derives alike (HKDF, RFC 5869).

    A key on a token cannot be read: an RSA one gives its PKCS#1 v1.5 signature of a fixed
    label instead, which is deterministic (RFC 8017 §8.2) and only the token can make. ECDSA
    signatures are randomised, so an EC token key gives None (a random secret per process).
    """
    if isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        material = ca_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    elif isinstance(ca_key.public_key(), rsa.RSAPublicKey):
        material = sign_bytes(ca_key, _SECRET_INFO, hashes.SHA256())
    else:
        return None
    kdf = HKDF(hashes.SHA256(), 32, salt=None, info=_SECRET_INFO)
    return kdf.derive(material)


def new_nonce() -> str:
    """A fresh cookie value."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_NONCE_BYTES)).decode("ascii").rstrip("=")


def cookie_header(nonce: str) -> tuple[str, str]:
    """The `Set-Cookie` header that gives the browser `nonce` (session cookie, this host only)."""
    return ("Set-Cookie", f"{COOKIE}={nonce}; Path=/; Secure; HttpOnly; SameSite=Strict")


def cookie_nonce(request: HttpRequest) -> str | None:
    """The nonce of the request's form cookie, when it is well-formed."""
    for name, value in request.headers:
        if name.lower() != "cookie":
            continue
        for pair in value.split(";"):
            key, _, found = pair.strip().partition("=")
            if key == COOKIE and _is_nonce(found):
                return found
    return None


def make_token(secret: bytes, path: str, nonce: str, now: float | None = None) -> str:
    """The form token for `nonce` on the page at `path`, issued at `now`."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(secret, path, nonce, issued)}"


def is_browser(request: HttpRequest) -> bool:
    """Whether the request shows any mark of a browser (see the module docstring)."""
    if request.header("origin") is not None:
        return True
    if any(name.lower().startswith("sec-fetch-") for name, _ in request.headers):
        return True
    return (request.header("user-agent") or "").startswith("Mozilla/")


def check_origin(request: HttpRequest) -> None:
    """Refuse a cross-site POST by its Fetch Metadata or its Origin.

    Raises:
        Forbidden: `Sec-Fetch-Site` is not `same-origin`, or `Origin` is not this page's.
    """
    site = request.header("sec-fetch-site")
    if site is not None and site.strip().lower() != "same-origin":
        raise Forbidden("Forms sent from another site are refused; open this page and submit it.")
    origin = request.header("origin")
    if origin is None:
        return
    if origin.strip() == "null" and site is not None:
        # A browser made to send no referrer (a user setting) sends `Origin: null` even for
        # the page's own form; its Fetch Metadata, which pages cannot forge, said same-origin.
        return
    host = (request.header("host") or "").strip().lower()
    expected = {f"https://{host}", f"https://{host.removesuffix(':443')}"}
    if not host or origin.strip().lower() not in expected:
        raise Forbidden("Forms sent from another site are refused; open this page and submit it.")


def check_token(
    secret: bytes, path: str, request: HttpRequest, token: str, now: float | None = None
) -> None:
    """Accept `token` only for this browser's cookie, recent, and made with `secret`.

    Raises:
        Forbidden: no cookie, no or a malformed token, a token of another cookie or secret, or
            an expired one.
    """
    nonce = cookie_nonce(request)
    issued_text, _, mac = token.partition(".")
    current = time.time() if now is None else now
    if nonce is None or not issued_text.isdigit() or len(issued_text) > 12:
        raise Forbidden(_EXPIRED)
    issued = int(issued_text)
    expected = _mac(secret, path, nonce, issued)
    if not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode("ascii")):
        raise Forbidden(_EXPIRED)
    if not current - TOKEN_LIFETIME <= issued <= current + _CLOCK_SKEW:
        raise Forbidden(_EXPIRED)


_EXPIRED = "The form has expired or was not sent from this page; submit it again."


def _mac(secret: bytes, path: str, nonce: str, issued: int) -> str:
    message = f"{path}|{nonce}|{issued}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _is_nonce(text: str) -> bool:
    return len(text) == 22 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
