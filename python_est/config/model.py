"""Configuration values: frozen dataclasses and the name lists the loader checks against."""

from __future__ import annotations

import enum
import ipaddress
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from python_est.keys import KeyType
from python_est.profile import IssuanceProfile
from python_est.statedir import DEFAULT_CA as DEFAULT_CA

EMBEDDED = "<embedded default>"

TLS_VERSIONS: dict[str, tuple[int, int]] = {
    "1.0": (3, 1),
    "1.1": (3, 2),
    "1.2": (3, 3),
    "1.3": (3, 4),
}
CIPHER_NAMES = frozenset(
    {
        "chacha20-poly1305",
        "aes256gcm",
        "aes128gcm",
        "aes256ccm",
        "aes128ccm",
        "aes256",
        "aes128",
        "3des",
        "rc4",
    }
)
MAC_NAMES = frozenset({"aead", "sha", "sha256", "sha384", "md5"})
KEY_EXCHANGE_NAMES = frozenset(
    {"ecdhe_ecdsa", "ecdhe_rsa", "dhe_rsa", "rsa", "srp_sha", "srp_sha_rsa", "dh_anon", "ecdh_anon"}
)
# Refused unless [tls] allow_legacy = yes, and then each is named in a start-up warning.
WEAK_VERSIONS = frozenset({"1.0", "1.1"})
WEAK_CIPHERS = frozenset({"3des", "rc4"})
WEAK_MACS = frozenset({"md5"})
WEAK_KEY_EXCHANGES = frozenset({"rsa", "dh_anon", "ecdh_anon"})
# Anonymous suites authenticate nobody (RFC 7030 §3.2.3 forbids them); never allowed.
FORBIDDEN_KEY_EXCHANGES = frozenset({"dh_anon", "ecdh_anon"})
# Groups for new verifiers (RFC 5054 Appendix A); smaller ones exist only in imported files.
SRP_GROUP_BITS = (2048, 3072, 4096)


class AuthMethod(enum.Enum):
    CERT = "cert"
    SRP = "srp"
    BASIC = "basic"


# A tuple of alternatives; each alternative is a set of methods that must all hold.
AuthRequirement = tuple[frozenset[AuthMethod], ...]

ANY_CREDENTIAL: AuthRequirement = (
    frozenset({AuthMethod.CERT}),
    frozenset({AuthMethod.SRP}),
    frozenset({AuthMethod.BASIC}),
)
CERT_ONLY: AuthRequirement = (frozenset({AuthMethod.CERT}),)


@dataclass(frozen=True)
class ServerConfig:
    address: str = "127.0.0.1"
    port: int = 8443
    state_dir: Path = Path("state")
    server_names: tuple[str, ...] = ()
    max_connections: int = 64
    max_connections_per_address: int = 16  # the loader's default: max_connections // 4
    backlog: int = 128
    handshake_timeout: float = 10.0
    request_timeout: float = 30.0
    max_body_bytes: int = 65536
    pending_retry_after: int = 60
    workers: int = 1
    shutdown_grace: float = 30.0
    # PROXY protocol (HAProxy send-proxy / send-proxy-v2): connections from `trusted_proxies`
    # must start with a header naming the client; everyone else is a direct client.
    proxy_protocol: bool = False
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    header_timeout: float = 10.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "plain"


@dataclass(frozen=True)
class Passphrase:
    """Where the passphrase of an encrypted CA key comes from, and the key that said so.

    `kind` is `file` (a path), `env` (a variable name), `credential` (a systemd credential name,
    read from $CREDENTIALS_DIRECTORY) or `pass` (the passphrase itself: est_proxy's
    `[CAhandler] issuing_ca_key_passphrase` only). Read when the key is loaded
    (`config.passphrase.read_passphrase`), so it never sits in the configuration.
    """

    kind: str
    value: str = field(repr=False)
    section: str = "ca"
    key: str = "key_passphrase"


@dataclass(frozen=True)
class Pkcs11Key:
    """A CA key on a PKCS#11 token: `[ca] pkcs11_module`, `pkcs11_token`, `pkcs11_key_label`
    and `pkcs11_pin` (a `Passphrase` source, never the PIN itself)."""

    module: Path
    token: str
    key_label: str
    pin: Passphrase


@dataclass(frozen=True)
class CaConfig:
    """The embedded CA: generated under the state directory unless files are given."""

    common_name: str = "python-est Root CA"
    organization: str = ""
    key_type: KeyType = KeyType.RSA_3072
    validity_days: int = 3650
    issuing_ca: bool = False
    issuing_key_type: KeyType = KeyType.RSA_2048
    cert_file: Path | None = None
    key_file: Path | None = None
    chain_files: tuple[Path, ...] = ()
    key_passphrase: Passphrase | None = None
    # /healthz and the log warn once the CA certificate expires within this many days.
    expiry_warning_days: int = 30
    pkcs11: Pkcs11Key | None = None


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    server_key_type: KeyType = KeyType.RSA_2048
    server_validity_days: int = 825
    min_version: str = "1.2"
    max_version: str = "1.2"
    cipher_names: tuple[str, ...] = ("aes256gcm", "aes128gcm", "chacha20-poly1305")
    mac_names: tuple[str, ...] = ("aead", "sha256", "sha384")
    key_exchange_names: tuple[str, ...] = ("ecdhe_ecdsa", "ecdhe_rsa")
    srp_min_version: str = "1.2"
    srp_cipher_names: tuple[str, ...] = ("aes256", "aes128")
    srp_mac_names: tuple[str, ...] = ("sha",)
    allow_legacy: bool = False
    client_trust_anchors: tuple[Path, ...] = ()
    session_cache_size: int = 10000
    session_lifetime: int = 3600
    alpn: tuple[str, ...] = ("http/1.1",)

    @property
    def srp_key_exchange_names(self) -> tuple[str, ...]:
        return ("srp_sha_rsa", "srp_sha")


@dataclass(frozen=True)
class SrpConfig:
    enabled: bool = True
    user_db: Path = Path("users.srp")
    group_bits: int = 2048
    # `user_db` came from the older python-est's `[SRP] userdb`: when it holds a tlslite
    # VerifierDB, its users are imported into the state directory's store (python_est.state).
    legacy_user_db: bool = False
    # `user add` and `user passwd` refuse shorter passwords (0: any non-empty password).
    min_password_length: int = 8


@dataclass(frozen=True)
class LedgerConfig:
    path: Path = Path("ledger.sqlite3")
    export_dir: Path | None = None
    # A postgresql:// URL moves the ledger, users, failure counters and TLS ticket keys into
    # PostgreSQL, shared by several instances; "" keeps the SQLite file at `path`.
    url: str = ""
    pool_size: int = 8


@dataclass(frozen=True)
class AuthConfig:
    realm: str = "python-est"
    max_failures: int = 5
    failure_window: int = 300
    lockout: int = 300
    # The lockout rule (python_est.ratelimit.rules): per account and per address thresholds,
    # and how long a successful login keeps a (user, address) pair exempt from them.
    account_max_failures: int = 20
    address_max_failures: int = 30
    known_good: int = 2592000


@dataclass(frozen=True)
class BootstrapConfig:
    enabled: bool = True
    path: str = "/bootstrap"


# The anonymous health check (python_est.ops); fixed, so monitors need no configuration.
HEALTH_PATH = "/healthz"


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus listener (plain HTTP, so loopback by default)."""

    enabled: bool = False
    address: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class CrlConfig:
    """The CRL: served anonymously at `path`, written to `file`, named in issued certificates."""

    enabled: bool = True
    path: str = "/crl/ca.crl"
    file: Path = Path("state/crl/ca.crl")
    validity_hours: int = 168
    base_url: str = ""

    @property
    def url(self) -> str | None:
        """The CRL Distribution Point URL, or None without a public base URL."""
        return self.base_url + self.path if self.enabled and self.base_url else None

    def for_ca(self, name: str) -> CrlConfig:
        """The CRL of the CA `name`: the default CA's is this one; `[ca:NAME]`'s is NAME.crl
        next to it, in the same folder and under the same URL folder."""
        if name == DEFAULT_CA:
            return self
        return replace(
            self,
            path=posixpath.join(posixpath.dirname(self.path), f"{name}.crl"),
            file=self.file.parent / f"{name}.crl",
        )

    def for_generation(self, generation: int) -> CrlConfig:
        """The CRL of a CA's root key `generation` (1: this one; N: "-gN" before ".crl"), so
        that each root key signs its own CRL at its own URL after a rollover."""
        if generation == 1:
            return self
        stem, suffix = posixpath.splitext(self.path)
        return replace(
            self,
            path=f"{stem}-g{generation}{suffix}",
            file=self.file.with_name(f"{self.file.stem}-g{generation}{self.file.suffix}"),
        )


@dataclass(frozen=True)
class OcspConfig:
    """The OCSP responder: at `path` on the EST port, optionally on a plain-HTTP listener."""

    enabled: bool = True
    path: str = "/ocsp"
    validity_minutes: int = 60
    base_url: str = ""
    signer: str = "ca"  # "ca" or "delegated" (state_dir/ocsp/signer.pem)
    http_enabled: bool = False
    http_address: str = "127.0.0.1"
    http_port: int = 8080

    @property
    def url(self) -> str | None:
        """The responder URL for issued certificates' AIA, or None without a base URL."""
        return self.base_url + self.path if self.enabled and self.base_url else None


@dataclass(frozen=True)
class LabelConfig:
    """Policy for one CA label; name "" is the unlabelled `/.well-known/est/<op>` default."""

    name: str = ""
    profile: IssuanceProfile = field(default_factory=IssuanceProfile)
    enroll_auth: AuthRequirement = ANY_CREDENTIAL
    reenroll_auth: AuthRequirement = CERT_ONLY
    serverkeygen_auth: AuthRequirement = ANY_CREDENTIAL
    password_subjects: str = "own"
    csrattrs: str = ""
    require_pop: bool = False
    approval: str = "auto"
    enforce_csrattrs: bool = False
    serverkeygen: bool = True
    serverkeygen_key_type: KeyType = KeyType.RSA_2048
    # Labels whose certificates may /simplereenroll here ("" is the default label); a label
    # always accepts its own certificates.
    reenroll_from: tuple[str, ...] = ()
    base64_lines: str = "auto"
    # Webhooks (python_est.webhooks): asked before issuing, told after; "" is off.
    authorize_url: str = ""
    notify_url: str = ""
    webhook_ca_file: Path | None = None
    webhook_client_cert: Path | None = None
    webhook_client_key: Path | None = None
    webhook_timeout: float = 5.0
    webhook_failure: str = "closed"
    # /simpleenroll and /serverkeygen issue only what matches a pre-registered device.
    require_registration: bool = False
    # RFC 9908 prescribed values (`service.prescribed` reads them): a subject template and
    # extensions with the values the client must use.
    csrattrs_subject: str = ""
    csrattrs_extensions: str = ""
    # The CA that issues this label's certificates, answers its /cacerts, signs its CRL and
    # anchors its client certificates: DEFAULT_CA (`[ca]`) or the NAME of a `[ca:NAME]`.
    ca: str = DEFAULT_CA
    # Who issues (python_est.backends): this CA, an upstream EST server (RA mode), or an
    # est_proxy-style CA handler.
    backend: str = "embedded"
    upstream_url: str = ""
    upstream_ca_file: Path | None = None
    upstream_client_cert: Path | None = None
    upstream_client_key: Path | None = None
    upstream_user: str = ""
    upstream_password: Passphrase | None = None
    upstream_timeout: float = 10.0
    handler_file: Path | None = None
    # The handler's `[CAhandler]` section, as it reads it (backend = handler only).
    handler_options: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Factory (IDevID, IEEE 802.1AR) certificates (`policy.idevid`): the manufacturer CAs whose
    # certificates authenticate /simpleenroll here, their CRLs, and which subject they obtain.
    manufacturer_cas: tuple[Path, ...] = ()
    manufacturer_crls: tuple[Path, ...] = ()
    idevid_subject: str = "same"
    idevid_template: str = ""


@dataclass(frozen=True)
class Config:
    source: str = EMBEDDED
    server: ServerConfig = field(default_factory=ServerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    ca: CaConfig = field(default_factory=CaConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    srp: SrpConfig = field(default_factory=SrpConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    crl: CrlConfig = field(default_factory=CrlConfig)
    labels: Mapping[str, LabelConfig] = field(default_factory=lambda: {"": LabelConfig()})
    warnings: tuple[str, ...] = ()
    ocsp: OcspConfig = field(default_factory=OcspConfig)
    # The `[ca:NAME]` CAs by NAME (the `[ca]` CA is `ca`, named DEFAULT_CA).
    cas: Mapping[str, CaConfig] = field(default_factory=dict)

    def ca_config(self, name: str) -> CaConfig:
        """The CaConfig of the CA `name` (DEFAULT_CA or a `[ca:NAME]`); KeyError if unknown."""
        return self.ca if name == DEFAULT_CA else self.cas[name]

    @property
    def ca_names(self) -> tuple[str, ...]:
        """Every configured CA: DEFAULT_CA first, then the `[ca:NAME]` ones."""
        return (DEFAULT_CA, *self.cas)


def weak_tls_settings(cfg: TlsConfig) -> list[str]:
    """Name every legacy setting in `cfg` (for the refusal or the start-up warning)."""
    weak = []
    for key, version in (
        ("min_version", cfg.min_version),
        ("srp_min_version", cfg.srp_min_version),
    ):
        if version in WEAK_VERSIONS:
            weak.append(f"{key} = {version} (TLS 1.0/1.1 are deprecated by RFC 8996)")
    for key, names, bad in (
        ("cipher_names", cfg.cipher_names, WEAK_CIPHERS),
        ("srp_cipher_names", cfg.srp_cipher_names, WEAK_CIPHERS),
        ("mac_names", cfg.mac_names, WEAK_MACS),
        ("srp_mac_names", cfg.srp_mac_names, WEAK_MACS),
        ("key_exchange_names", cfg.key_exchange_names, WEAK_KEY_EXCHANGES),
    ):
        weak.extend(f"{key} includes {name}" for name in names if name in bad)
    return weak


def legacy_tls_warnings(cfg: TlsConfig) -> list[str]:
    return [
        f"[tls] weak setting enabled by allow_legacy: {item}" for item in weak_tls_settings(cfg)
    ]
