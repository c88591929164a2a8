"""The only code that runs tlslite-ng handshakes.

One port serves SRP and certificate clients: the ClientHello is peeked (`MSG_PEEK`) and parsed,
and the `handshakeServer` arguments are chosen per connection, because tlslite-ng given both a
verifierDB and a certificate offers only SRP-RSA suites (tlslite-ng#468). After the handshake the
client chain is validated here (tlslite checks only possession of the key), tls-unique is
captured (RFC 5929; tlslite does not expose it) and the peer becomes a `PeerIdentity`.
tlslite's camelCase, types and exceptions stop at this package.

The handshake stays tlslite's, but its expensive primitives run in OpenSSL through
`cryptography`, each plugged in at a tlslite seam: server signatures (`fastkeys`), ECDHE
(`fastkex`), record protection and session tickets (`fastcipher`). Every tlslite internal that
this package (or `python_est.users`) overrides, calls or rebinds is listed in `tlslite_seams`,
which building a `TlsEndpoint` checks against the installed tlslite-ng. Importing this package
changes nothing in tlslite; an accelerated endpoint switches the session-ticket ciphers to
OpenSSL and the handshake's cipher-suite lists to memoized ones (`fastsuites`) when it is built.
"""

from python_est.tls.endpoint import TicketKeys, TlsEndpoint
from python_est.tls.fastcipher import openssl_ticket_ciphers, use_openssl_ticket_ciphers
from python_est.tls.hello import Route, classify_client_hello
from python_est.tls.settings import build_settings, validate_tls_names
from python_est.tls.srp import VerifierLookup
from python_est.tls.stream import TlsStream

__all__ = [
    "Route",
    "TicketKeys",
    "TlsEndpoint",
    "TlsStream",
    "VerifierLookup",
    "build_settings",
    "classify_client_hello",
    "openssl_ticket_ciphers",
    "use_openssl_ticket_ciphers",
    "validate_tls_names",
]
