"""`TlsEndpoint`: credentials, settings and session caches; one handshake per connection."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import socket
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from tlslite.api import X509, SessionCache, X509CertChain, parsePEMKey
from tlslite.constants import AlertDescription, CipherSuite
from tlslite.errors import TLSError, TLSLocalAlert

from python_est.config import TlsConfig
from python_est.errors import HandshakeFailed, TooManyRequests
from python_est.policy import ClientCertificate, ClientChainValidator, PeerIdentity, TlsInfo
from python_est.ratelimit import FailureCounter
from python_est.tls.fastkeys import tlslite_private_key
from python_est.tls.hello import Route, classify_client_hello, peek_first_record, srp_username
from python_est.tls.settings import build_settings, with_ticket_keys
from python_est.tls.stream import Connection, DeadlineSocket, FastConnection, TlsStream, describe

log = logging.getLogger("python_est.tls")

VerifierLookup = Mapping[bytes, tuple[int, int, bytes, int]]
TicketKeys = Callable[[], Sequence[bytes]]

_TICKET_KEY_BYTES = 32  # tlslite's default ticket cipher is AES-256-GCM
_VERSION_NAMES = {(3, 1): "TLS1.0", (3, 2): "TLS1.1", (3, 3): "TLS1.2", (3, 4): "TLS1.3"}
# A fatal access_denied alert (RFC 5246 §7.2), sent in the clear before any ServerHello to
# refuse an SRP login whose user or address is locked out.
_ACCESS_DENIED = bytes([21, 3, 3, 0, 2, 2, AlertDescription.access_denied])


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


# tlslite looks entries up by bytes(username) and offers SRP only `if verifierDB:`, so the
# adapter is truthy even when the store is empty: SRP clients must still get an answer. One per
# connection: `looked_up` tells that the server did its ServerKeyExchange work for this client.
class _Verifiers:
    def __init__(self, lookup: VerifierLookup) -> None:
        self._lookup = lookup
        self.looked_up = False

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, name: bytes) -> tuple[int, int, bytes, int]:
        self.looked_up = True
        return self._lookup[bytes(name)]


class _AlertHoldingSocket(DeadlineSocket):
    """Holds back a fatal plaintext alert until the socket is closed.

    tlslite sends its bad_record_mac alert for a wrong SRP password before it raises; were it to
    leave at once, the guesser could start its next attempt before this one is counted. With the
    alert held until `close`, and the failure counted before `close`, every attempt sees the
    count of the one before.
    """

    hold = False
    _held = b""

    def send(self, data: bytes) -> int:
        # A plaintext alert record: type 21, version, length 2, level 2 (fatal), description.
        if self.hold and len(data) == 7 and data[0] == 21 and data[5] == 2 and not self._held:
            self._held = bytes(data)
            return len(data)
        return super().send(data)

    def close(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            try:
                super().sendall(held)
            except OSError:
                pass  # the client is gone; it needs no alert
        super().close()


class _SrpSessionCache(SessionCache):  # type: ignore[misc]
    """A session cache that forgets an SRP session once its user's verifier changed.

    `user passwd` and `user remove` must end every session the old password opened: each
    session remembers a digest of the (salt, verifier) it was made with, and a lookup whose
    user now has another one (a removed user gets a simulated entry) raises KeyError, which
    tlslite answers with a full handshake that needs the new password.
    """

    def __init__(self, size: int, lifetime: int, lookup: VerifierLookup) -> None:
        super().__init__(size, lifetime)
        self._lookup = lookup
        self._made_with: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
        self._bindings = threading.Lock()

    def __setitem__(self, session_id: bytearray, session: Any) -> None:
        digest = self._digest(session.srpUsername)
        with self._bindings:
            self._made_with[session] = digest
        super().__setitem__(session_id, session)

    def __getitem__(self, session_id: bytearray) -> Any:
        session = super().__getitem__(session_id)
        with self._bindings:
            made_with = self._made_with.get(session)
        if made_with is None or made_with != self._digest(session.srpUsername):
            raise KeyError("the user's verifier changed since this session was made")
        return session

    def _digest(self, user: str | None) -> bytes:
        if not user:
            return b""
        _, _, salt, verifier = self._lookup[user.encode("utf-8")]
        return hashlib.sha256(salt + verifier.to_bytes(1024, "big")).digest()


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
            bad_record_mac) per user and per address, and refuses SRP handshakes for locked
            keys with an access_denied alert; the service shares it for HTTP Basic.
        ticket_keys: returns the RFC 5077 session-ticket keys (32 bytes; the sealing key
            first), asked before each certificate handshake so rotations apply at once; shared
            by every worker process so any of them resumes a ticket. None: one random key made
            for this endpoint (tickets resume in this process only); a callable returning no
            keys turns tickets off. SRP connections never get tickets: tlslite rebuilds a
            session from a ticket without the SRP user name, and then answers an SRP client
            presenting one with handshake_failure instead of a full handshake.
        accelerated: run signatures, ECDHE and record protection in OpenSSL through
            `cryptography` (the default); False leaves all of it to tlslite's Python code, for
            comparison (`scripts/bench_tls.py`).

    Raises:
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
            else _SrpSessionCache(params.session_cache_size, params.session_lifetime, verifier_db)
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
        wrapped = _AlertHoldingSocket(sock, deadline)
        srp: _SrpLogin | None = None
        try:
            route, record = self._route(sock, deadline)
            if route is not Route.CERT and self._verifier_db is not None:
                srp = _SrpLogin(srp_username(record), _Verifiers(self._verifier_db))
                if self._limiter is not None:
                    _admit_srp(self._limiter, wrapped, srp.user, address)
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
            self._srp_failed(srp, address, wrapped, wrong_password=_wrong_password(exc))
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
            self._limiter.record_success(srp.user, address)
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
        srp: _SrpLogin | None,
        address: str,
        wrapped: _AlertHoldingSocket,
        *,
        wrong_password: bool,
    ) -> None:
        """Count a failed SRP login, then close the socket (which sends the held alert)."""
        try:
            self._count_srp_failure(srp, address, wrong_password)
        finally:
            wrapped.close()

    def _count_srp_failure(self, srp: _SrpLogin | None, address: str, wrong_password: bool) -> None:
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

    def _run(self, conn: Connection, route: Route, srp: _SrpLogin | None) -> None:
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


@dataclasses.dataclass(frozen=True)
class _SrpLogin:
    user: str | None  # as sent in the ClientHello
    verifiers: _Verifiers


def _admit_srp(
    limiter: FailureCounter, sock: DeadlineSocket, user: str | None, address: str
) -> None:
    """Refuse an SRP login that a lockout covers, with an access_denied alert."""
    # Online guessing is the only attack on SRP, and tlslite does nothing about it.
    try:
        limiter.check(user, address)
    except TooManyRequests as exc:
        sock.sendall(_ACCESS_DENIED)
        name = "" if user is None else user[:128]
        log.info("TLS-SRP login refused for user %r: %s", name, exc.detail)
        raise HandshakeFailed(f"SRP login refused: {exc.detail}") from None


def _wrong_password(exc: TLSError) -> bool:
    # A wrong password and an unknown user (simulated verifier, RFC 5054 §2.5.1.3) both fail
    # the client's Finished check: the server raises bad_record_mac.
    return isinstance(exc, TLSLocalAlert) and exc.description == AlertDescription.bad_record_mac


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
