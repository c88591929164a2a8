"""`BootstrapPage`: the human enrollment page, one route of the routing table.

Browsers cannot speak TLS-SRP, so the page works over ordinary server-authenticated TLS and asks
for the user name and password of the same user store. It does not authenticate, authorize or
issue by itself: each submission becomes the `/simpleenroll` (or `/serverkeygen`) request a
device would send (`Content-Type: application/pkcs10`, base64 DER body, `Authorization: Basic`
built from the form) and goes through `EstService.handle` with the connection's own
`PeerIdentity`. So the constant-time password check, the failure counters and lockout, the
authorization policy and the ledger are exactly those of `/simpleenroll`. When the connection
is TLS-SRP-authenticated (curl `--tlsauthtype SRP`), no Authorization header is built: the SRP
identity counts, as it does for devices.

Refusals re-show the form with one message and the service's status (400, 401, 403, 429, ...),
but never a `WWW-Authenticate` challenge: a browser would answer it with its own login dialog.

Issue 13: a submission is checked against cross-site forgery first (`csrf`: Fetch Metadata,
Origin, and a cookie-bound form token for browsers). The page authenticates with the typed
credentials (or TLS-SRP) only: a client certificate the browser presents on its own is dropped
from the identity, so visiting a forged page cannot spend it. The CSR is found in linear time
before the password is checked.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import replace
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key
from cryptography.x509.oid import NameOID

from python_est import wire
from python_est.bootstrap.csrf import (
    TOKEN_FIELD,
    check_origin,
    check_token,
    cookie_header,
    cookie_nonce,
    is_browser,
    make_token,
    new_nonce,
)
from python_est.bootstrap.forms import MAX_CSR_BYTES, Form, csr_der, parse_form
from python_est.bootstrap.p12 import COMPATIBLE, FORMAT_FIELD, MODERN, compatible_pkcs12
from python_est.bootstrap.views import (
    CONTENT_SECURITY_POLICY,
    MIN_PASSPHRASE,
    MODE_CSR,
    MODE_KEYGEN,
    FormState,
    Issued,
    fingerprint,
    render_form,
    render_result,
)
from python_est.errors import (
    AuthenticationRequired,
    BadRequest,
    EstError,
    InternalError,
    MethodNotAllowed,
    NotFound,
)
from python_est.messages import (
    PKCS7_MIME,
    PKCS8,
    PKCS10,
    TEXT_HTML,
    WELL_KNOWN,
    HttpRequest,
    HttpResponse,
    label_segment,
)
from python_est.policy import PeerIdentity

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    # Not no-referrer: under it browsers send `Origin: null` on the page's own POST (Fetch
    # §3.2.5 "serializing a request origin"), and `csrf.check_origin` needs the real origin.
    # same-origin still sends nothing to another site.
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


class EstHandler(Protocol):
    """What the page needs from `python_est.service.EstService`."""

    def handle(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse: ...


class BootstrapPage:
    """The bootstrap page at `path` (outside `/.well-known/est/`).

    Args:
        service: answers the EST requests the page makes on the user's behalf.
        path: where the page lives (config `[bootstrap] path`).
        enabled: when false every request to the page is 404.
        label: the CA label whose policy applies ("" for the unlabelled paths).
        form_secret: the key of the form tokens; every process serving the page must share it
            (`csrf.derive_form_secret`). None: a random one, for a single process.
    """

    def __init__(
        self,
        service: EstHandler,
        *,
        path: str = "/bootstrap",
        enabled: bool = True,
        label: str = "",
        form_secret: bytes | None = None,
    ) -> None:
        self.service = service
        self.path = path
        self.enabled = enabled
        self._secret = form_secret if form_secret is not None else secrets.token_bytes(32)
        self._est = f"{WELL_KNOWN}/{label_segment(label)}/" if label else f"{WELL_KNOWN}/"

    def handle(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        """Serve GET (the form) and POST (a submission).

        Returns:
            An HTML page; errors in a submission are shown on the form with their status.

        Raises:
            NotFound: the page is disabled, or `request` is for another path.
            MethodNotAllowed: neither GET nor POST.
        """
        if not self.enabled or request.path != self.path:
            raise NotFound(f"no such resource: {request.path[:80]}")
        if request.method == "GET":
            return self._form(200, FormState(form_nonce=_nonce(request)), peer)
        if request.method == "POST":
            return self._submit(request, peer)
        raise MethodNotAllowed(f"{self.path} takes GET or POST", allowed=("GET", "POST"))

    # --- submission -----------------------------------------------------------------------------

    def _submit(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        # Typed credentials only: a certificate the browser presents by itself is ambient
        # authority that a forged submission would spend.
        peer = replace(peer, client_cert=None)
        state = FormState(srp_user=peer.srp_user, form_nonce=_nonce(request))
        try:
            check_origin(request)
            form = parse_form(request.header("content-type"), request.body)
            state = replace(_keep(form, peer), form_nonce=state.form_nonce)
            if is_browser(request):
                check_token(self._secret, self.path, request, form.get(TOKEN_FIELD))
            authorization = _authorization(form, peer)
            if state.mode == MODE_KEYGEN:
                return self._serverkeygen(form, state, authorization, peer)
            return self._enroll(form, state, authorization, peer)
        except EstError as err:
            return self._refusal(err, state, peer)

    def _enroll(
        self, form: Form, state: FormState, authorization: str | None, peer: PeerIdentity
    ) -> HttpResponse:
        der = csr_der(form)
        response = self._post("simpleenroll", der, authorization, peer)
        if response.status == 202:
            return self._pending(response, state, peer)
        cert = wire.decode_certs_only(response.body)[0]
        issued = Issued(cert, self._ca_chain(peer))
        return _html(200, render_result(self.path, issued))

    def _serverkeygen(
        self, form: Form, state: FormState, authorization: str | None, peer: PeerIdentity
    ) -> HttpResponse:
        passphrase = form.get("passphrase")
        if len(passphrase) < MIN_PASSPHRASE:
            raise BadRequest(
                f"Choose a PKCS#12 passphrase of at least {MIN_PASSPHRASE} characters."
            )
        if passphrase != form.get("passphrase2"):
            raise BadRequest("The two passphrases differ.")
        p12_format = form.get(FORMAT_FIELD) or MODERN
        if p12_format not in (MODERN, COMPATIBLE):
            raise BadRequest("Choose a PKCS#12 format: AES-256 or compatible.")
        csr = _placeholder_csr(state.common_name, state.dns_names)
        response = self._post("serverkeygen", csr, authorization, peer)
        if response.status == 202:
            return self._pending(response, state, peer)
        key, cert = _split_serverkeygen(response)
        chain = self._ca_chain(peer)
        if p12_format == COMPATIBLE:
            p12 = compatible_pkcs12(state.common_name, key, cert, chain, passphrase)
            return _html(200, render_result(self.path, Issued(cert, chain, p12, compatible=True)))
        # The MAC as costly as the encryption: a passphrase guess costs the same either way.
        p12 = wire.encode_pkcs12(
            state.common_name.encode("utf-8"), key, cert, chain, passphrase.encode("utf-8")
        )
        return _html(200, render_result(self.path, Issued(cert, chain, p12)))

    def _post(
        self, operation: str, csr_der: bytes, authorization: str | None, peer: PeerIdentity
    ) -> HttpResponse:
        # The request a device would send (RFC 7030 §4.2.1): base64 DER, application/pkcs10.
        headers = [("content-type", PKCS10)]
        if authorization is not None:
            headers.append(("authorization", authorization))
        request = HttpRequest(
            method="POST",
            target=self._est + operation,
            headers=tuple(headers),
            body=wire.encode_base64(csr_der),
        )
        return self.service.handle(request, peer)

    def _pending(
        self, response: HttpResponse, state: FormState, peer: PeerIdentity
    ) -> HttpResponse:
        # RFC 7030 §4.2.3: the request waits for an operator; the same request sent again later
        # returns the certificate once it is approved.
        retry_after = response.header("Retry-After") or ""
        headers = (("Retry-After", retry_after),) if retry_after.isdigit() else ()
        if state.mode == MODE_KEYGEN:
            # The placeholder CSR carries a fresh key each time, so a later submission is a new
            # request (§4.2.3 retries are recognised by key and subject).
            wait = (
                " A key generated by the server cannot be collected later from this page;"
                " on this CA, send a CSR instead."
            )
        elif headers:
            wait = (
                f" Submit the same CSR again in {retry_after} seconds to collect the certificate."
            )
        else:
            wait = " Submit the same CSR again later to collect the certificate."
        notice = f"Your request is waiting for approval by an administrator.{wait}"
        return self._form(202, replace(state, notice=notice), peer, headers)

    def _refusal(self, err: EstError, state: FormState, peer: PeerIdentity) -> HttpResponse:
        # One message, the service's status. Of the error's headers only Retry-After (429, 503)
        # is kept: no WWW-Authenticate (a browser would answer it with its own login dialog).
        headers = tuple((k, v) for k, v in err.headers() if k.lower() == "retry-after")
        return self._form(err.status, replace(state, error=_sentence(err.detail)), peer, headers)

    def _form(
        self,
        status: int,
        state: FormState,
        peer: PeerIdentity,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> HttpResponse:
        nonce = state.form_nonce or new_nonce()
        state = replace(
            state,
            srp_user=peer.srp_user,
            ca_fingerprints=self._root_fingerprints(peer),
            form_token=make_token(self._secret, self.path, nonce),
        )
        return _html(status, render_form(self.path, state), (*headers, cookie_header(nonce)))

    # --- CA certificates ----------------------------------------------------------------------

    def _ca_chain(self, peer: PeerIdentity) -> tuple[x509.Certificate, ...]:
        # The same certificates /cacerts returns (RFC 7030 §4.1.3), so the chain offered for
        # download is exactly what a device would install. Without it the page still shows the
        # issued certificate: it is in the ledger already and must not be lost to the user.
        request = HttpRequest(method="GET", target=self._est + "cacerts", headers=())
        try:
            return tuple(wire.decode_certs_only(self.service.handle(request, peer).body))
        except EstError:
            return ()

    def _root_fingerprints(self, peer: PeerIdentity) -> tuple[str, ...]:
        chain = self._ca_chain(peer)
        return tuple(fingerprint(cert) for cert in chain if cert.issuer == cert.subject)


# --- helpers --------------------------------------------------------------------------------


def _html(status: int, page: bytes, extra: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, (("Content-Type", TEXT_HTML), *SECURITY_HEADERS, *extra), page)


def _keep(form: Form, peer: PeerIdentity) -> FormState:
    """The submitted values the form shows again after an error (never a secret)."""
    mode = form.get("mode") or MODE_CSR
    if mode not in (MODE_CSR, MODE_KEYGEN):
        raise BadRequest("Choose whether you send a CSR or let the server generate the key.")
    return FormState(
        user=form.get("user"),
        mode=mode,
        csr_text=form.get("csr")[:MAX_CSR_BYTES],
        common_name=form.get("common_name").strip(),
        dns_names=form.get("dns_names").strip(),
        srp_user=peer.srp_user,
    )


def _authorization(form: Form, peer: PeerIdentity) -> str | None:
    """The `Authorization: Basic` value for the form's credentials (RFC 7617, UTF-8).

    None on a TLS-SRP connection: the SRP identity counts and no password is asked again.
    """
    if peer.srp_user is not None:
        return None
    user, password = form.get("user"), form.get("password")
    if not user or not password:
        # No realm: the page never sends a challenge.
        raise AuthenticationRequired("Enter your user name and password.")
    if ":" in user:
        # Basic cannot carry it (RFC 7617 §2); no such user can exist in the store either.
        raise AuthenticationRequired("invalid user name or password")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _placeholder_csr(common_name: str, dns_names: str) -> bytes:
    """A CSR naming what the user asked for; /serverkeygen ignores its key (RFC 7030 §4.4.1)."""
    if not common_name:
        raise BadRequest("Enter the common name for the certificate.")
    names = [name for name in re.split(r"[,\s]+", dns_names) if name]
    try:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        sans = [x509.DNSName(name.encode("idna").decode("ascii")) for name in names]
    except (ValueError, UnicodeError):
        raise BadRequest(
            "The common name must be 1 to 64 characters and DNS names valid host names."
        ) from None
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def _split_serverkeygen(
    response: HttpResponse,
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The private key and the certificate of a /serverkeygen response (RFC 7030 §4.4.2)."""
    key = cert = None
    try:
        parts = wire.parse_multipart(response.header("Content-Type") or "", response.body)
        for headers, content in parts:
            media_type, _ = wire.parse_media_type(headers.get("content-type", ""))
            if media_type == PKCS8:
                key = load_der_private_key(wire.decode_base64_der(content, "key"), None)
            elif media_type == PKCS7_MIME:
                cert = wire.decode_certs_only(content)[0]
    except (EstError, ValueError, TypeError):
        raise InternalError("the /serverkeygen response could not be read") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) or cert is None:
        raise InternalError("the /serverkeygen response lacks the key or the certificate")
    return key, cert


def _nonce(request: HttpRequest) -> str:
    """The browser's form cookie, or a new one (set with the next form)."""
    return cookie_nonce(request) or new_nonce()


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return "The request failed."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
