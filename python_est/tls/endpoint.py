"""`TlsEndpoint`: credentials, settings and session caches; one handshake per connection."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from tlslite.api import X509, SessionCache, X509CertChain, parsePEMKey
from tlslite.constants import CipherSuite
from tlslite.errors import TLSError

from python_est.config import TlsConfig
from python_est.errors import HandshakeFailed
from python_est.policy import ClientCertificate, ClientChainValidator, PeerIdentity, TlsInfo
from python_est.tls.hello import Route, classify_client_hello, peek_first_record
from python_est.tls.settings import build_settings
from python_est.tls.stream import Connection, DeadlineSocket, TlsStream, describe

log = logging.getLogger("python_est.tls")

VerifierLookup = Mapping[bytes, tuple[int, int, bytes, int]]

_VERSION_NAMES = {(3, 1): "TLS1.0", (3, 2): "TLS1.1", (3, 3): "TLS1.2", (3, 4): "TLS1.3"}


@dataclasses.dataclass(frozen=True)
class _EndpointArgs:
    cert_chain: Sequence[x509.Certificate]
    private_key: PrivateKeyTypes
    verifier_db: VerifierLookup | None
    chain_validator: ClientChainValidator | None
    params: TlsConfig
    client_ca_names: Sequence[x509.Name]


@dataclasses.dataclass(frozen=True)
class _Credentials:
    chain: Any  # tlslite X509CertChain
    key: Any  # tlslite private key
    req_cas: list[bytearray] | None


# tlslite looks entries up by bytes(username) and offers SRP only `if verifierDB:`, so the
# adapter is truthy even when the store is empty: SRP clients must still get an answer.
class _Verifiers:
    def __init__(self, lookup: VerifierLookup) -> None:
        self._lookup = lookup

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, name: bytes) -> tuple[int, int, bytes, int]:
        return self._lookup[bytes(name)]


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
    ) -> None:
        self._args = _EndpointArgs(
            cert_chain, private_key, verifier_db, chain_validator, params, client_ca_names
        )
        self._cert_settings, self._srp_settings = build_settings(params)
        self._creds = _Credentials(
            chain=_tlslite_chain(cert_chain),
            key=_tlslite_key(private_key),
            req_cas=[bytearray(n.public_bytes()) for n in client_ca_names] or None,
        )
        self._verifiers = None if verifier_db is None else _Verifiers(verifier_db)
        self._validator = chain_validator
        # One cache per route, so a session can only ever resume on the route that made it.
        self._cert_cache = SessionCache(params.session_cache_size, params.session_lifetime)
        self._srp_cache = SessionCache(params.session_cache_size, params.session_lifetime)
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
        wrapped = DeadlineSocket(sock, deadline)
        try:
            route = self._route(sock, deadline)
            conn = Connection(wrapped)
            self._run(conn, route)
        except HandshakeFailed:
            wrapped.close()
            raise
        except TLSError as exc:
            wrapped.close()
            raise HandshakeFailed(describe(exc)) from None
        except TimeoutError:
            wrapped.close()
            raise HandshakeFailed("handshake deadline passed") from None
        except OSError as exc:
            wrapped.close()
            raise HandshakeFailed(f"socket error: {exc.__class__.__name__}") from None
        except Exception as exc:  # tlslite raises IndexError, TypeError... on malformed input
            log.debug("tlslite failed on input from %s", address, exc_info=True)
            wrapped.close()
            raise HandshakeFailed(f"malformed handshake ({exc.__class__.__name__})") from None
        conn.ignoreAbruptClose = True
        stream = TlsStream(conn, wrapped)
        try:
            return stream, self._identity(conn, address)
        except HandshakeFailed:
            stream.close()
            raise

    def _route(self, sock: socket.socket, deadline: float) -> Route:
        if self._verifiers is None:
            return Route.CERT
        record = peek_first_record(sock, deadline)
        return Route.CERT if record is None else classify_client_hello(record)

    def _run(self, conn: Connection, route: Route) -> None:
        creds = self._creds
        if route is Route.CERT:
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
        with_cert = route is Route.SRP_RSA
        conn.handshakeServer(
            verifierDB=self._verifiers,
            certChain=creds.chain if with_cert else None,
            privateKey=creds.key if with_cert else None,
            sessionCache=self._srp_cache,
            settings=self._srp_settings,
            alpn=self._alpn,
        )

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
