"""CSR-attribute enforcement (RFC 7030 §4.5.2) and the /serverkeygen key type, through EstService.

A real CA, ledger and user store; no sockets, no mocks.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from python_est import oids, wire
from python_est.ca import CertificateAuthority
from python_est.config import LabelConfig
from python_est.errors import InvalidCsr
from python_est.keys import KeyType, key_type_of
from python_est.ledger import SqliteLedger
from python_est.messages import HttpRequest, HttpResponse
from python_est.policy import ClientCertificate, PeerIdentity, TlsInfo
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.service import EstService, check_label
from python_est.service.enforce import (
    CsrRequirements,
    KeyChoice,
    check_csr,
    csr_problems,
    csr_requirements,
    serverkeygen_key_type,
)
from python_est.users import UserStore

EST = "/.well-known/est"
TLS12 = TlsInfo(
    "TLS1.2",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    tls_unique=bytes(12),
    extended_master_secret=True,
)
ANON = PeerIdentity("192.0.2.10:40000", TLS12)
RFC8951_SPEC = (
    "challengePassword, id-ecPublicKey=secp384r1, extensionRequest=macAddress, ecdsa-with-SHA384"
)
SERIAL_NUMBER = NameOID.SERIAL_NUMBER.dotted_string

LABELS = {
    "": LabelConfig(),
    "rfc": LabelConfig(
        name="rfc", csrattrs=RFC8951_SPEC, enforce_csrattrs=True, password_subjects="any"
    ),
    "rfcoff": LabelConfig(name="rfcoff", csrattrs=RFC8951_SPEC, password_subjects="any"),
    "serial": LabelConfig(
        name="serial", csrattrs=SERIAL_NUMBER, enforce_csrattrs=True, password_subjects="any"
    ),
    "rsa": LabelConfig(
        name="rsa",
        csrattrs="rsaEncryption",
        enforce_csrattrs=True,
        serverkeygen_key_type=KeyType.EC_P256,
    ),
    "rsa3072": LabelConfig(
        name="rsa3072", csrattrs="rsaEncryption", serverkeygen_key_type=KeyType.RSA_3072
    ),
    "popkey": LabelConfig(
        name="popkey",
        require_pop=True,
        csrattrs="id-ecPublicKey=secp256r1+secp384r1",
        enforce_csrattrs=True,
        serverkeygen_key_type=KeyType.EC_P384,
    ),
}


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Enforce Test CA", key_type=KeyType.EC_P256, validity_days=30
    )


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def service(ca: CertificateAuthority, tmp_path: Path) -> EstService:
    users = UserStore.create(tmp_path / "users.json", reload_interval=None)
    users.add("alice", "alice-pw")
    return EstService(
        labels=LABELS,
        ca=ca,
        ledger=SqliteLedger(tmp_path / "ledger.sqlite3"),
        users=users,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="test",
    )


def make_csr(
    key: CertificateIssuerPrivateKeyTypes,
    *,
    common_name: str = "alice",
    challenge: str | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
    digest: hashes.HashAlgorithm | None = None,
    subject_extra: Sequence[x509.NameAttribute[str]] = (),
) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), *subject_extra])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if challenge is not None:
        builder = builder.add_attribute(oids.CHALLENGE_PASSWORD, challenge.encode())
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, digest or hashes.SHA256())  # type: ignore[arg-type]


def mac_extension() -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oids.MAC_ADDRESS, b"\x04\x06\x00\x11\x22\x33\x44\x55")


def post(op: str, csr: x509.CertificateSigningRequest) -> HttpRequest:
    token = base64.b64encode(b"alice:alice-pw").decode()
    body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    headers = (("content-type", "application/pkcs10"), ("authorization", f"Basic {token}"))
    return HttpRequest("POST", f"{EST}/{op}", headers, body)


def keygen_key(response: HttpResponse) -> CertificateIssuerPrivateKeyTypes:
    content_type = response.header("Content-Type")
    assert response.status == 200 and content_type is not None
    parts = wire.parse_multipart(content_type, response.body)
    key = serialization.load_der_private_key(base64.b64decode(parts[0][1]), None)
    [cert] = wire.decode_certs_only(parts[1][1])
    assert cert.public_key() == key.public_key()
    return key  # type: ignore[return-value]


# --- reading CsrAttrs as requirements ---


def test_rfc8951_example_is_read_item_by_item() -> None:
    got = csr_requirements(wire.parse_csrattrs_spec(RFC8951_SPEC))
    assert got == CsrRequirements(
        challenge_password=True,
        keys=(KeyChoice("ec", "secp384r1"),),
        signature_algorithms=frozenset({oids.ECDSA_WITH_SHA384.dotted_string}),
        extensions=(oids.MAC_ADDRESS.dotted_string,),
        attributes=(),
    )


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        ("id-ecPublicKey", (KeyChoice("ec"),)),
        ("secp256r1", (KeyChoice("ec", "secp256r1"),)),
        ("rsaEncryption", (KeyChoice("rsa"),)),
        (
            "rsaEncryption, id-ecPublicKey=secp384r1",
            (KeyChoice("rsa"), KeyChoice("ec", "secp384r1")),
        ),
        ("1.3.101.112", (KeyChoice("ed25519"),)),
    ],
)
def test_key_announcements(spec: str, keys: tuple[KeyChoice, ...]) -> None:
    assert csr_requirements(wire.parse_csrattrs_spec(spec)).keys == keys


def test_other_items_are_attributes() -> None:
    got = csr_requirements(wire.parse_csrattrs_spec(f"extensionRequest, {SERIAL_NUMBER}, 1.2.3.4"))
    assert got.attributes == (oids.EXTENSION_REQUEST.dotted_string, SERIAL_NUMBER, "1.2.3.4")
    assert got.keys == () and got.extensions == () and not got.challenge_password


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rsaEncryption=secp256r1", "takes an RSA size in bits"),
        ("rsaEncryption=1024", "takes an RSA size in bits"),
        ("1.3.101.112=4096", "takes no values"),  # Ed25519
        ("id-ecPublicKey=ecdsa-with-SHA256", "unknown elliptic curve"),
        ("id-ecPublicKey=1.3.132.0.10", "not allowed"),  # secp256k1
        ("1.3.132.0.10", "not allowed"),
    ],
)
def test_nonsense_announcements_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        csr_requirements(wire.parse_csrattrs_spec(spec))


def test_nonsense_stops_the_service_at_start(ca: CertificateAuthority, tmp_path: Path) -> None:
    label = LabelConfig(name="bad", csrattrs="rsaEncryption=secp256r1")
    with pytest.raises(ValueError, match=r"CA label 'bad': csrattrs: .*takes an RSA size"):
        EstService(
            labels={"bad": label},
            ca=ca,
            ledger=SqliteLedger(tmp_path / "l.sqlite3"),
            users=None,
            limiter=LoginLimiter(MemoryCounters(), Limits()),
            realm="r",
        )


def test_check_label_reports_without_the_label_prefix() -> None:
    check_label(LabelConfig(name="ok", csrattrs=RFC8951_SPEC, require_pop=True))
    with pytest.raises(ValueError, match=r"^rsaEncryption takes an RSA size in bits"):
        check_label(LabelConfig(name="bad", csrattrs="id-ecPublicKey, rsaEncryption=secp256r1"))
    with pytest.raises(ValueError, match=r"^/serverkeygen cannot generate"):
        check_label(LabelConfig(name="p521", csrattrs="id-ecPublicKey=1.3.132.0.35"))


# --- the check itself ---


def test_each_shortfall_is_named(p256: ec.EllipticCurvePrivateKey) -> None:
    requirements = csr_requirements(wire.parse_csrattrs_spec(RFC8951_SPEC))
    problems = csr_problems(requirements, make_csr(p256), client_key=True, is_ra=False)
    assert problems == [
        "missing attribute challengePassword (1.2.840.113549.1.9.7)",
        "key must be ec-secp384r1, not ec-secp256r1",
        "signature algorithm must be ecdsa-with-SHA384 (1.2.840.10045.4.3.3), "
        "not ecdsa-with-SHA256 (1.2.840.10045.4.3.2)",
        "missing extension macAddress (1.3.6.1.1.1.1.22) in the extensionRequest",
    ]
    with pytest.raises(InvalidCsr, match=r"RFC 7030 §4\.5\.2") as info:
        check_csr(requirements, make_csr(p256), client_key=True, is_ra=False)
    assert info.value.status == 400


def test_a_compliant_csr_passes(p384: ec.EllipticCurvePrivateKey) -> None:
    requirements = csr_requirements(wire.parse_csrattrs_spec(RFC8951_SPEC))
    csr = make_csr(p384, challenge="anything", extensions=[mac_extension()], digest=hashes.SHA384())
    check_csr(requirements, csr, client_key=True, is_ra=False)


def test_ra_needs_no_challenge_password_and_serverkeygen_ignores_the_key(
    p256: ec.EllipticCurvePrivateKey,
) -> None:
    requirements = csr_requirements(wire.parse_csrattrs_spec(RFC8951_SPEC))
    csr = make_csr(p256, extensions=[mac_extension()])
    ra_problems = csr_problems(requirements, csr, client_key=True, is_ra=True)
    assert not any("challengePassword" in p for p in ra_problems)
    assert csr_problems(requirements, csr, client_key=False, is_ra=True) == []


def test_other_oids_may_be_subject_or_csr_attributes(p256: ec.EllipticCurvePrivateKey) -> None:
    requirements = csr_requirements(wire.parse_csrattrs_spec(f"{SERIAL_NUMBER}, emailAddress"))
    in_subject = make_csr(
        p256,
        subject_extra=[
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "42"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@example.com"),
        ],
    )
    assert csr_problems(requirements, in_subject, client_key=True, is_ra=False) == []
    as_attribute = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]))
        .add_attribute(x509.ObjectIdentifier(SERIAL_NUMBER), b"42")
        .sign(p256, hashes.SHA256())
    )
    assert csr_problems(requirements, as_attribute, client_key=True, is_ra=False) == [
        "missing attribute emailAddress (1.2.840.113549.1.9.1)"
    ]


def test_rsa_announcement_accepts_any_allowed_rsa_size(p256: ec.EllipticCurvePrivateKey) -> None:
    requirements = csr_requirements(wire.parse_csrattrs_spec("rsaEncryption"))
    rsa_key = rsa.generate_private_key(65537, 3072)
    assert csr_problems(requirements, make_csr(rsa_key), client_key=True, is_ra=False) == []
    assert csr_problems(requirements, make_csr(p256), client_key=True, is_ra=False) == [
        "key must be rsa, not ec-secp256r1"
    ]


# --- through the service ---


def test_enforcing_label_refuses_with_400_naming_what_is_missing(
    service: EstService, p256: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(InvalidCsr) as info:
        service.handle(post("rfc/simpleenroll", make_csr(p256)), ANON)
    assert info.value.status == 400
    assert "challengePassword (1.2.840.113549.1.9.7)" in info.value.detail
    assert "key must be ec-secp384r1, not ec-secp256r1" in info.value.detail
    assert "macAddress" in info.value.detail


def test_enforcing_label_issues_for_a_compliant_csr(
    service: EstService, p384: ec.EllipticCurvePrivateKey
) -> None:
    # A challengePassword that is not shaped like a tls-unique is not linking's business.
    csr = make_csr(
        p384, challenge="device-otp", extensions=[mac_extension()], digest=hashes.SHA384()
    )
    response = service.handle(post("rfc/simpleenroll", csr), ANON)
    assert response.status == 200
    [cert] = wire.decode_certs_only(response.body)
    assert cert.public_key() == p384.public_key()


def test_without_enforcement_the_same_csr_is_issued(
    service: EstService, p256: ec.EllipticCurvePrivateKey
) -> None:
    assert service.handle(post("rfcoff/simpleenroll", make_csr(p256)), ANON).status == 200


def test_subject_attribute_requirement_through_the_service(
    service: EstService, p256: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(InvalidCsr, match=f"missing attribute {SERIAL_NUMBER}"):
        service.handle(post("serial/simpleenroll", make_csr(p256)), ANON)
    serial = x509.NameAttribute(NameOID.SERIAL_NUMBER, "SN-1")
    response = service.handle(
        post("serial/simpleenroll", make_csr(p256, subject_extra=[serial])), ANON
    )
    assert response.status == 200


def test_enforced_serverkeygen_ignores_the_csr_key_but_not_the_attributes(
    service: EstService, p256: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(InvalidCsr, match="macAddress") as info:
        service.handle(post("rfc/serverkeygen", make_csr(p256, challenge="x")), ANON)
    assert "key must be" not in info.value.detail
    csr = make_csr(p256, challenge="x", extensions=[mac_extension()])
    key = keygen_key(service.handle(post("rfc/serverkeygen", csr), ANON))
    assert key_type_of(key) == "ec-secp384r1"  # announced by the label's csrattrs


def test_linking_and_enforcement_together(
    service: EstService, p256: ec.EllipticCurvePrivateKey
) -> None:
    unique = base64.b64encode(TLS12.tls_unique or b"").decode()
    rsa_key = rsa.generate_private_key(65537, 2048)
    with pytest.raises(InvalidCsr, match="key must be ec-secp256r1 or ec-secp384r1, not rsa-2048"):
        service.handle(post("popkey/simpleenroll", make_csr(rsa_key, challenge=unique)), ANON)
    # Linking is judged first: a missing challengePassword gets the linking reason.
    with pytest.raises(InvalidCsr, match="proof-of-possession linking"):
        service.handle(post("popkey/simpleenroll", make_csr(p256)), ANON)
    assert service.handle(post("popkey/simpleenroll", make_csr(p256, challenge=unique)), ANON)
    ra_cert, _ = CertificateAuthority.create(
        common_name="Other", key_type=KeyType.EC_P256, validity_days=1
    ).issue_client_certificate(
        common_name="ra", extended_key_usage=(oids.ID_KP_CLIENT_AUTH, oids.ID_KP_CMC_RA)
    )
    ra = PeerIdentity("192.0.2.30:1", TLS12, ClientCertificate((ra_cert,), valid=True, is_ra=True))
    # An RA needs neither linking nor a challengePassword, but still the announced key.
    ok = HttpRequest(
        "POST",
        f"{EST}/popkey/simpleenroll",
        (("content-type", "application/pkcs10"),),
        base64.b64encode(
            make_csr(p256, common_name="device-9").public_bytes(serialization.Encoding.DER)
        ),
    )
    assert service.handle(ok, ra).status == 200


# --- which key /serverkeygen makes ---


@pytest.mark.parametrize(
    ("spec", "configured", "expected"),
    [
        ("", KeyType.RSA_3072, KeyType.RSA_3072),
        ("id-ecPublicKey=secp384r1", KeyType.RSA_2048, KeyType.EC_P384),
        ("id-ecPublicKey=secp256r1+secp384r1", KeyType.EC_P384, KeyType.EC_P384),
        ("id-ecPublicKey", KeyType.RSA_2048, KeyType.EC_P256),
        ("rsaEncryption", KeyType.EC_P256, KeyType.RSA_2048),
        ("rsaEncryption", KeyType.RSA_4096, KeyType.RSA_4096),
        ("challengePassword, ecdsa-with-SHA384", KeyType.EC_P256, KeyType.EC_P256),
    ],
)
def test_serverkeygen_key_type(spec: str, configured: KeyType, expected: KeyType) -> None:
    requirements = csr_requirements(wire.parse_csrattrs_spec(spec))
    assert serverkeygen_key_type(requirements, configured) is expected


def test_ungeneratable_announcement_fails_at_start_only_with_serverkeygen(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    def build(serverkeygen: bool) -> EstService:
        label = LabelConfig(
            name="p521", csrattrs="id-ecPublicKey=1.3.132.0.35", serverkeygen=serverkeygen
        )
        return EstService(
            labels={"p521": label},
            ca=ca,
            ledger=SqliteLedger(tmp_path / f"{serverkeygen}.sqlite3"),
            users=None,
            limiter=LoginLimiter(MemoryCounters(), Limits()),
            realm="r",
        )

    with pytest.raises(ValueError, match="cannot generate the announced key type"):
        build(True)
    build(False)


def test_serverkeygen_sizes_through_the_service(
    service: EstService, p256: ec.EllipticCurvePrivateKey
) -> None:
    assert (
        key_type_of(keygen_key(service.handle(post("rsa/serverkeygen", make_csr(p256)), ANON)))
        == "rsa-2048"
    )
    key = keygen_key(service.handle(post("rsa3072/serverkeygen", make_csr(p256)), ANON))
    assert key_type_of(key) == "rsa-3072"
    assert (
        key_type_of(keygen_key(service.handle(post("serverkeygen", make_csr(p256)), ANON)))
        == "rsa-2048"
    )
