"""Every tlslite-ng internal that python-est overrides, calls or rebinds, and a check of them.

python_est.tls reaches into tlslite-ng in places that are not its documented API: private
`TLSConnection` methods wrapped for tls-unique and the handshake-size limit, the record layer's
cipher selection, the key-exchange and key classes the fast path subclasses, module-level
names it rebinds for session tickets and cipher-suite lists, and the SRP maths
`python_est.users` uses. `SEAMS` lists
each of them with the parameter names our code relies on. A tlslite release that renames one
would otherwise not fail: an override of a method that no longer exists is simply never
called, and the fast path would silently fall back to pure Python (or tls-unique would stay
empty). `check_tlslite()` runs when a `TlsEndpoint` is built, so `serve`, reloads and tests all
refuse a tlslite that does not match, with one line naming the first mismatch.

`COUNTS` proves the fast path runs: each OpenSSL-backed seam adds one per use (a plain
attribute increment, no lock: under concurrency an increment can be lost, so the figures are
lower bounds, for tests and diagnostics rather than metrics).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
from collections.abc import Iterable
from typing import Any

import tlslite

#: The only release whose internals `SEAMS` describes (pyproject.toml pins it).
TLSLITE_VERSION = "0.8.2"

#: `tlslite.tlsconnection` seals and opens session tickets with these factories, which it
#: imported by name from `tlslite.utils.cipherfactory`; `fastcipher` rebinds them.
TICKET_CIPHER_NAMES = ("createAESGCM", "createAESCCM", "createAESCCM_8", "createCHACHA20")


class Use(enum.Enum):
    """What python-est does with a tlslite name."""

    HANDSHAKE = "tls-unique, handshake-size limit and SNI tolerance (stream.Connection)"
    RECORD_LAYER = "record protection in OpenSSL (fastcipher)"
    TICKETS = "session-ticket sealing in OpenSSL (fastcipher)"
    KEY_EXCHANGE = "ECDHE in OpenSSL (fastkex)"
    SIGNING = "server signatures in OpenSSL (fastkeys)"
    PUBLIC_KEY = "client CertificateVerify checked in OpenSSL (fastkeys)"
    SETTINGS = "settings validated once (settings)"
    SRP = "SRP sessions and verifier maths (srp, python_est.users)"
    SUITES = "cipher-suite lists memoized (fastsuites)"


@dataclasses.dataclass(frozen=True)
class Seam:
    """One tlslite name that python-est depends on.

    Args:
        use: why we touch it.
        owner: "module:Class" or "module" (module-level names).
        name: the attribute; dotted for an attribute of an attribute.
        params: the parameter names our code passes or overrides, in tlslite's order; None
            when it is not called (an attribute, a property, or a function whose signature
            differs between tlslite's optional back ends, such as `powMod` without gmpy2).
        probe: constructor arguments for an instance, for attributes set in `__init__`.
    """

    use: Use
    owner: str
    name: str
    params: tuple[str, ...] | None = None
    probe: tuple[Any, ...] | None = None

    @property
    def where(self) -> str:
        """The name as a reader finds it in tlslite's source, e.g. `TLSConnection._getMsg`."""
        module, _, cls = self.owner.partition(":")
        return f"{cls or module}.{self.name}"


_CONN = "tlslite.tlsconnection:TLSConnection"
_ECDHE = "tlslite.keyexchange:ECDHE_RSAKeyExchange"
_RSA = "tlslite.utils.python_rsakey:Python_RSAKey"
_ECDSA = "tlslite.utils.python_ecdsakey:Python_ECDSAKey"
_FACTORY = ("key", "implList")
_SUITES = "tlslite.constants:CipherSuite"

SEAMS: tuple[Seam, ...] = (
    # stream.Connection: tls-unique (RFC 5929), the handshake message cap, IP-literal SNI.
    Seam(Use.HANDSHAKE, _CONN, "__init__", ("self", "sock")),
    Seam(Use.HANDSHAKE, _CONN, "_handshakeStart", ("self", "client")),
    Seam(Use.HANDSHAKE, _CONN, "_sendMsg", ("self", "msg", "randomizeFirstBlock", "update_hashes")),
    Seam(
        Use.HANDSHAKE,
        _CONN,
        "_getMsg",
        ("self", "expectedType", "secondaryType", "constructorType"),
    ),
    Seam(Use.HANDSHAKE, _CONN, "_getNextRecordFromSocket", ("self",)),
    Seam(Use.HANDSHAKE, _CONN, "_sendError", ("self", "alertDescription", "errorStr")),
    Seam(Use.HANDSHAKE, _CONN, "_defragmenter.buffers", probe=(None,)),
    Seam(Use.HANDSHAKE, "tlslite.extensions:SNIExtension", "hostNames"),
    Seam(Use.HANDSHAKE, "tlslite.extensions:SNIExtension", "serverNames", probe=()),
    # fastcipher.FastRecordLayer, installed as FastConnection._recordLayer.
    Seam(Use.RECORD_LAYER, _CONN, "_recordLayer", probe=(None,)),
    Seam(Use.RECORD_LAYER, "tlslite.recordlayer:RecordLayer", "__init__", ("self", "sock")),
    Seam(
        Use.RECORD_LAYER, "tlslite.recordlayer:RecordLayer", "_getCipherSettings", ("cipherSuite",)
    ),
    *(
        Seam(Use.RECORD_LAYER, "tlslite.utils.cipherfactory", name, _FACTORY)
        for name in TICKET_CIPHER_NAMES
    ),
    Seam(Use.RECORD_LAYER, "tlslite.utils.cipherfactory", "createAES", ("key", "IV", "implList")),
    *(Seam(Use.TICKETS, "tlslite.tlsconnection", name, _FACTORY) for name in TICKET_CIPHER_NAMES),
    # fastkex: TLS 1.3 key shares and the TLS 1.2 ECDHE exchange object.
    Seam(Use.KEY_EXCHANGE, _CONN, "_getKEX", ("group", "version")),
    Seam(
        Use.KEY_EXCHANGE,
        _CONN,
        "_serverCertKeyExchange",
        (
            "self",
            "clientHello",
            "serverHello",
            "sigHashAlg",
            "serverCertChain",
            "keyExchange",
            "reqCert",
            "reqCAs",
            "cipherSuite",
            "settings",
        ),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:RawDHKeyExchange",
        "__init__",
        ("self", "group", "version"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:RawDHKeyExchange",
        "get_random_private_key",
        ("self",),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:RawDHKeyExchange",
        "calc_public_value",
        ("self", "private", "point_format"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:RawDHKeyExchange",
        "calc_shared_key",
        ("self", "private", "peer_share", "valid_point_formats"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:AECDHKeyExchange",
        "__init__",
        ("self", "cipherSuite", "clientHello", "serverHello", "acceptedCurves", "defaultCurve"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:AECDHKeyExchange",
        "makeServerKeyExchange",
        ("self", "sigHash"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:AECDHKeyExchange",
        "processClientKeyExchange",
        ("self", "clientKeyExchange"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.keyexchange:AuthenticatedKeyExchange",
        "makeServerKeyExchange",
        ("self", "sigHash"),
    ),
    Seam(
        Use.KEY_EXCHANGE,
        _ECDHE,
        "__init__",
        (
            "self",
            "cipherSuite",
            "clientHello",
            "serverHello",
            "privateKey",
            "acceptedCurves",
            "defaultCurve",
        ),
    ),
    *(
        Seam(Use.KEY_EXCHANGE, _ECDHE, name, probe=(0, None, None, None, ()))
        for name in (
            "cipherSuite",
            "clientHello",
            "serverHello",
            "privateKey",
            "acceptedCurves",
            "defaultCurve",
            "ecdhXs",
            "group_id",
        )
    ),
    Seam(
        Use.KEY_EXCHANGE,
        "tlslite.messages:ServerKeyExchange",
        "createECDH",
        ("self", "curve_type", "named_curve", "point"),
    ),
    Seam(Use.KEY_EXCHANGE, "tlslite.messages:ClientKeyExchange", "ecdh_Yc", probe=(0,)),
    # fastkeys: the server key classes and the client's public key.
    Seam(
        Use.SIGNING,
        _RSA,
        "__init__",
        ("self", "n", "e", "d", "p", "q", "dP", "dQ", "qInv", "key_type"),
    ),
    Seam(Use.SIGNING, _RSA, "sign", ("self", "bytes", "padding", "hashAlg", "saltLen")),
    Seam(Use.SIGNING, _ECDSA, "__init__", ("self", "x", "y", "curve_name", "secret_multiplier")),
    Seam(Use.SIGNING, _ECDSA, "_sign", ("self", "data", "hAlg")),
    Seam(Use.SIGNING, _ECDSA, "_hashAndSign", ("self", "data", "hAlg")),
    Seam(
        Use.PUBLIC_KEY, _CONN, "_check_certchain_with_settings", ("self", "cert_chain", "settings")
    ),
    Seam(
        Use.PUBLIC_KEY,
        _RSA,
        "verify",
        ("self", "sigBytes", "bytes", "padding", "hashAlg", "saltLen"),
    ),
    Seam(Use.PUBLIC_KEY, _RSA, "hasPrivateKey", ("self",)),
    Seam(Use.PUBLIC_KEY, _ECDSA, "_verify", ("self", "signature", "hash_bytes")),
    # settings._Prevalidated.
    Seam(Use.SETTINGS, "tlslite.handshakesettings:HandshakeSettings", "validate", ("self",)),
    # srp.SrpSessionCache, and python_est.users.srp (verifiers and Basic-auth checks).
    Seam(
        Use.SRP, "tlslite.sessioncache:SessionCache", "__init__", ("self", "maxEntries", "maxAge")
    ),
    Seam(
        Use.SRP,
        "tlslite.sessioncache:SessionCache",
        "__setitem__",
        ("self", "sessionID", "session"),
    ),
    Seam(Use.SRP, "tlslite.sessioncache:SessionCache", "__getitem__", ("self", "sessionID")),
    Seam(Use.SRP, "tlslite.mathtls", "makeX", ("salt", "username", "password")),
    Seam(Use.SRP, "tlslite.mathtls", "goodGroupParameters"),
    Seam(Use.SRP, "tlslite.utils.cryptomath", "powMod"),
    # fastsuites.CachedCipherSuite, rebound as tlslite.tlsconnection.CipherSuite.
    Seam(Use.SUITES, "tlslite.tlsconnection", "CipherSuite"),
    Seam(Use.SUITES, _SUITES, "_filterSuites", ("suites", "settings", "version")),
    *(
        Seam(Use.SUITES, _SUITES, name, ("settings", "version"))
        for name in ("getTLS13Suites", "getEcdsaSuites", "getEcdheCertSuites", "getCertSuites")
    ),
)


class TlsliteMismatch(ValueError):
    """The installed tlslite-ng is not the one python_est.tls was written against.

    A ValueError, like the endpoint's other start-up refusals, so `serve` reports it as one
    line and exits with status 2, and a reload keeps the running generation.
    """


def check_tlslite() -> None:
    """Verify the tlslite-ng version and every seam in `SEAMS`.

    Raises:
        TlsliteMismatch: one line naming the version or the first seam that does not match
            (and how many others do not).
    """
    installed = str(getattr(tlslite, "__version__", "unknown"))
    if installed != TLSLITE_VERSION:
        raise TlsliteMismatch(
            f"tlslite-ng {installed} is installed; python_est hooks the internals of "
            f"tlslite-ng {TLSLITE_VERSION} and needs exactly that version"
        )
    problems = list(seam_problems(SEAMS))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TlsliteMismatch(
            f"tlslite-ng {installed} does not match python_est: {problems[0]}{more}"
        )


def seam_problems(seams: Iterable[Seam]) -> Iterable[str]:
    """One sentence per seam that is missing or has other parameter names."""
    probes: dict[tuple[str, tuple[Any, ...]], object] = {}
    for seam in seams:
        try:
            target = _owner(seam.owner)
            if seam.probe is not None:
                key = (seam.owner, seam.probe)
                if key not in probes:
                    probes[key] = target(*seam.probe)
                target = probes[key]
            for part in seam.name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError):
            yield f"{seam.where} is missing ({seam.use.value})"
            continue
        if seam.params is None:
            continue
        try:
            found = tuple(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            found = ()
        if found != seam.params:
            yield (
                f"{seam.where} takes ({', '.join(found)}), expected ({', '.join(seam.params)}) "
                f"({seam.use.value})"
            )


def _owner(owner: str) -> Any:
    module, _, cls = owner.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


class FastPathCounts:
    """How often each OpenSSL-backed seam ran in this process (lower bounds; see above)."""

    def __init__(self) -> None:
        self.key_exchange = 0  # ECDH shared secrets computed by OpenSSL (TLS 1.2 and 1.3)
        self.signing = 0  # signatures made with the server key by OpenSSL
        self.public_key = 0  # peer signatures (client CertificateVerify) verified by OpenSSL
        self.record_layer = 0  # key schedules whose record ciphers are OpenSSL's

    def snapshot(self) -> dict[str, int]:
        """The counts now, by seam name."""
        return dict(vars(self))


COUNTS = FastPathCounts()
