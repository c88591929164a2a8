"""`TlsEndpoint`: credentials, settings and session caches; one handshake per connection."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import socket
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from tlslite.api import X509, SessionCache, X509CertChain, parsePEMKey
from tlslite.constants import CipherSuite
from tlslite.errors import TLSError

from python_est.config import TlsConfig
from python_est.errors import HandshakeFailed, Unavailable
from python_est.policy import ClientCertificate, ClientChainValidator, PeerIdentity, TlsInfo
from python_est.ratelimit import FailureCounter
from python_est.tls.fastcipher import use_openssl_ticket_ciphers
from python_est.tls.fastkeys import tlslite_private_key
from python_est.tls.fastsuites import use_cached_suites
from python_est.tls.hello import Route, classify_client_hello, peek_first_record, srp_username
from python_est.tls.settings import build_settings, with_ticket_keys
from python_est.tls.srp import (
    AlertHoldingSocket,
    SrpLogin,
    SrpSessionCache,
    VerifierLookup,
    Verifiers,
    admit_srp,
    is_wrong_password,
)
from python_est.tls.stream import Connection, FastConnection, TlsStream, describe
from python_est.tls.tlslite_seams import check_tlslite

log = logging.getLogger("python_est.tls")

TicketKeys = Callable[[], Sequence[bytes]]

_TICKET_KEY_BYTES = 32  # tlslite's default ticket cipher is AES-256-GCM
_VERSION_NAMES = {(3, 1): "TLS1.0", (3, 2): "TLS1.1", (3, 3): "TLS1.2", (3, 4): "TLS1.3"}


@dataclasses.dataclass(frozen=True)
class _EndpointArgs:
    cert_chain: Sequence[x509.Certificate]
    private_key: PrivateKeyTypes
    verifier_db: VerifierLookup | None
    chain_validator: ClientChainValidator | None
    params: TlsConfig
    client_ca_names: Sequence[x509.Name]
    limiter: FailureCounter | None
    ticket_keys: TicketKeys | None
    accelerated: bool


@dataclasses.dataclass(frozen=True)
class _Credentials:
    chain: Any  # tlslite X509CertChain
    key: Any  # tlslite private key
    req_cas: list[bytearray] | None


class TlsEndpoint:
    """Server credentials and settings; runs one handshake per accepted connection.

    Args:
        cert_chain: the server certificate first, then its issuers (not the root).
        private_key: the key of `cert_chain[0]` (RSA or EC).
        verifier_db: SRP verifiers by bytes username; None turns SRP off.
        chain_validator: validates client chains; None means no client certificate
            authenticates anybody.
        params: the [tls] configuration.
        client_ca_names: subject names sent in the CertificateRequest as hints.
        limiter: counts failed SRP logins (a wrong password or an unknown user both end in
            bad_record_mac) and half-open SRP handshakes, and refuses SRP handshakes that a
            lockout covers with an access_denied alert; the service shares it for HTTP Basic.
        ticket_keys: returns the RFC 5077 session-ticket keys (32 bytes; the sealing key
            first), asked before each certificate handshake so rotations apply at once; shared
            by every worker process so any of them resumes a ticket. None: one random key made
            for this endpoint (tickets resume in this process only); a callable returning no
            keys turns tickets off. SRP connections never get tickets: tlslite rebuilds a
            session from a ticket without the SRP user name, and then answers an SRP client
            presenting one with handshake_failure instead of a full handshake.
        accelerated: run signatures, ECDHE and record protection in OpenSSL through
            `cryptography` (the default); False leaves all of it to tlslite's Python code, for
            comparison (`scripts/bench_tls.py`). True also switches tlslite's session-ticket
            ciphers to OpenSSL (`use_openssl_ticket_ciphers`) and its handshake code to
            memoized cipher-suite lists (`fastsuites`), process-wide.

    Raises:
        TlsliteMismatch: the installed tlslite-ng is not the version, or lacks a seam, that
            this package hooks (`tlslite_seams`); a ValueError.
        ValueError: the settings select no cipher suite, or the key does not fit tlslite.
    """

    def __init__(
        self,
        *,
        cert_chain: Sequence[x509.Certificate],
        private_key: PrivateKeyTypes,
        verifier_db: VerifierLookup | None,
        chain_validator: ClientChainValidator | None,
        params: TlsConfig,
        client_ca_names: Sequence[x509.Name] = (),
        limiter: FailureCounter | None = None,
        ticket_keys: TicketKeys | None = None,
        accelerated: bool = True,
    ) -> None:
        # Before anything else: a renamed tlslite internal would otherwise leave our override
        # uncalled and the fast path (or tls-unique) silently off.
        check_tlslite()
        if accelerated:
            use_openssl_ticket_ciphers()
            use_cached_suites()
        self._args = _EndpointArgs(
            cert_chain,
            private_key,
            verifier_db,
            chain_validator,
            params,
            client_ca_names,
            limiter,
            ticket_keys,
            accelerated,
        )
        self._limiter = limiter
        self._cert_settings, self._srp_settings = build_settings(params)
        self._ticket_keys = _own_ticket_keys() if ticket_keys is None else ticket_keys
        self._sealing: tuple[bytes, ...] = ()
        self._creds = _Credentials(
            chain=_tlslite_chain(cert_chain),
            key=tlslite_private_key(private_key) if accelerated else _tlslite_key(private_key),
            req_cas=[bytearray(n.public_bytes()) for n in client_ca_names] or None,
        )
        self._connection = FastConnection if accelerated else Connection
        self._verifier_db = verifier_db
        self._validator = chain_validator
        # One cache per route, so a session can only ever resume on the route that made it.
        self._cert_cache = SessionCache(params.session_cache_size, params.session_lifetime)
        self._srp_cache = (
            None
            if verifier_db is None
            else SrpSessionCache(params.session_cache_size, params.session_lifetime, verifier_db)
        )
        self._alpn = [bytearray(p.encode("ascii")) for p in params.alpn or ("http/1.1",)]

    def replace(self, **changes: Any) -> TlsEndpoint:
        """A new endpoint with some constructor arguments replaced (for reloads).

        Session caches start empty, so no session outlives a change of users or anchors.
        """
        args = dataclasses.replace(self._args, **changes)
        return TlsEndpoint(**{f.name: getattr(args, f.name) for f in dataclasses.fields(args)})

    def handshake(
        self, sock: socket.socket, address: str, deadline: float
    ) -> tuple[TlsStream, PeerIdentity]:
        """Run the server handshake on an accepted socket, which the result then owns.

        Args:
            sock: the accepted TCP socket.
            address: the peer address, for the identity and logs.
            deadline: `time.monotonic()` value by which the handshake must be done.

        Returns:
            The stream for application data and who the peer is.

        Raises:
            HandshakeFailed: the handshake failed or timed out; the socket has been closed.
        """
        wrapped = AlertHoldingSocket(sock, deadline)
        srp: SrpLogin | None = None
        try:
            route, record = self._route(sock, deadline)
            log.debug("%s: the ClientHello takes the %s handshake", address, route.value)
            if route is not Route.CERT and self._verifier_db is not None:
                srp = SrpLogin(srp_username(record), Verifiers(self._verifier_db))
                if self._limiter is not None:
                    admit_srp(self._limiter, wrapped, srp.user, address)
                wrapped.hold = True
            conn = self._connection(wrapped)
            # tlslite closes the socket on a failed handshake, which would send a held alert
            # before the failure is counted; the handlers below close it themselves.
            conn.closeSocket = False
            self._run(conn, route, srp)
        except HandshakeFailed:
            wrapped.close()
            raise
        except TLSError as exc:
            self._srp_failed(srp, address, wrapped, wrong_password=is_wrong_password(exc))
            raise HandshakeFailed(describe(exc)) from None
        except TimeoutError:
            self._srp_failed(srp, address, wrapped, wrong_password=False)
            raise HandshakeFailed("handshake deadline passed") from None
        except OSError as exc:
            self._srp_failed(srp, address, wrapped, wrong_password=False)
            raise HandshakeFailed(f"socket error: {exc.__class__.__name__}") from None
        except Exception as exc:  # tlslite raises IndexError, TypeError... on malformed input
            log.debug("tlslite failed on input from %s", address, exc_info=True)
            wrapped.close()
            raise HandshakeFailed(f"malformed handshake ({exc.__class__.__name__})") from None
        if srp is not None and srp.user is not None and self._limiter is not None:
            try:
                self._limiter.record_success(srp.user, address)
            except Unavailable as exc:  # the login stands; only its known-good mark is lost
                log.warning("successful SRP login from %s not recorded: %s", address, exc.detail)
        conn.closeSocket = True
        conn.ignoreAbruptClose = True
        stream = TlsStream(conn, wrapped)
        try:
            return stream, self._identity(conn, address)
        except HandshakeFailed:
            stream.close()
            raise

    def _srp_failed(
        self,
        srp: SrpLogin | None,
        address: str,
        wrapped: AlertHoldingSocket,
        *,
        wrong_password: bool,
    ) -> None:
        """Count a failed SRP login, then close the socket (which sends the held alert)."""
        try:
            self._count_srp_failure(srp, address, wrong_password)
        except Unavailable as exc:
            log.warning("failed SRP login from %s not counted: %s", address, exc.detail)
        finally:
            wrapped.close()

    def _count_srp_failure(self, srp: SrpLogin | None, address: str, wrong_password: bool) -> None:
        if srp is None or self._limiter is None:
            return
        if wrong_password:
            # Logged like a failed HTTP Basic login: the name as sent, escaped and bounded.
            user = "" if srp.user is None else srp.user
            log.info("TLS-SRP authentication failed for user %r", user[:128])
            self._limiter.record_failure(srp.user, address)
        elif srp.verifiers.looked_up:
            # A half-open handshake: the client made the server compute a ServerKeyExchange
            # and never finished. It counts against its address, as a failure does.
            self._limiter.record_incomplete(address)

    def _route(self, sock: socket.socket, deadline: float) -> tuple[Route, bytes]:
        if self._verifier_db is None:
            return Route.CERT, b""
        record = peek_first_record(sock, deadline)
        return (Route.CERT, b"") if record is None else (classify_client_hello(record), record)

    def _run(self, conn: Connection, route: Route, srp: SrpLogin | None) -> None:
        creds = self._creds
        if route is Route.CERT:
            self._refresh_ticket_keys()
            conn.handshakeServer(
                certChain=creds.chain,
                privateKey=creds.key,
                reqCert=True,  # always optional in tlslite; a missing certificate is fine
                reqCAs=creds.req_cas,
                sessionCache=self._cert_cache,
                settings=self._cert_settings,
                alpn=self._alpn,
            )
            return
        assert srp is not None  # the SRP route is taken only with a verifier lookup
        with_cert = route is Route.SRP_RSA
        conn.handshakeServer(
            verifierDB=srp.verifiers,
            certChain=creds.chain if with_cert else None,
            privateKey=creds.key if with_cert else None,
            sessionCache=self._srp_cache,
            settings=self._srp_settings,
            alpn=self._alpn,
        )

    def _refresh_ticket_keys(self) -> None:
        keys = tuple(self._ticket_keys())
        if keys != self._sealing:
            # A new settings object: handshakes under way keep the keys they started with.
            self._cert_settings = with_ticket_keys(self._cert_settings, keys)
            self._sealing = keys

    def _identity(self, conn: Connection, address: str) -> PeerIdentity:
        session = conn.session
        suite = session.cipherSuite
        is_srp = suite in CipherSuite.srpAllSuites
        tls = TlsInfo(
            version=_VERSION_NAMES.get(tuple(conn.version), str(conn.version)),
            cipher_suite=CipherSuite.ietfNames.get(suite, f"0x{suite:04X}"),
            # RFC 5929 tls-unique is undefined for TLS 1.3 (RFC 9266).
            tls_unique=conn.tls_unique if tuple(conn.version) <= (3, 3) else None,
            resumed=bool(conn.resumed),
            # The session keeps it across resumption (RFC 7627 §5.3 forbids losing it there).
            extended_master_secret=bool(session.extendedMasterSecret),
        )
        # session.srpUsername is copied from the ClientHello in every handshake; it proves
        # something only when an SRP suite was negotiated.
        srp_user = session.srpUsername if is_srp and session.srpUsername else None
        client_cert = None
        if not is_srp and session.clientCertChain:
            client_cert = self._client_certificate(session.clientCertChain)
        return PeerIdentity(address=address, tls=tls, client_cert=client_cert, srp_user=srp_user)

    def _client_certificate(self, chain: Any) -> ClientCertificate:
        # tlslite has checked CertificateVerify (possession of the key), nothing else.
        try:
            certs = tuple(x509.load_der_x509_certificate(bytes(c.bytes)) for c in chain.x509List)
        except ValueError:
            raise HandshakeFailed("client certificate cannot be parsed") from None
        if self._validator is None:
            return ClientCertificate(certs, valid=False, reason="no client trust anchors")
        return self._validator.validate(certs)


def _own_ticket_keys() -> TicketKeys:
    keys = (secrets.token_bytes(_TICKET_KEY_BYTES),)
    return lambda: keys


def _tlslite_chain(certs: Sequence[x509.Certificate]) -> Any:
    parsed = []
    for cert in certs:
        item = X509()
        item.parseBinary(bytearray(cert.public_bytes(serialization.Encoding.DER)))
        parsed.append(item)
    return X509CertChain(parsed)


def _tlslite_key(key: PrivateKeyTypes) -> Any:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return parsePEMKey(pem.decode("ascii"), private=True)
