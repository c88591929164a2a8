"""RFC 9908 CSR attributes: every example decodes, is served and is enforced; the CA fills in.

The example encodings are transcribed from the RFC's dumpasn1 listings (its §3.4 template with
the IANA-assigned id-aa-extensionReqTemplate, 1.2.840.113549.1.9.16.2.62, for TBD3).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_modules import rfc5280, rfc7030

from python_est import oids, wire
from python_est.app import check_csrattrs
from python_est.ca import CertificateAuthority
from python_est.client.template import (
    find_template,
    parse_subject_value,
    template_key_type,
)
from python_est.client.template import template_csr as client_csr
from python_est.config import LabelConfig, load_config
from python_est.errors import ConfigError, InvalidCsr
from python_est.keys import KeyType
from python_est.ledger import SqliteLedger
from python_est.messages import HttpRequest
from python_est.policy import PeerIdentity, TlsInfo
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.service import EstService, LabelError, check_label
from python_est.service.prescribed import Prescription, parse_extensions, parse_subject
from python_est.service.prescribed_check import prescription_problems
from python_est.users import UserStore
from python_est.wire.csrtemplate import (
    CsrTemplate,
    decode_extensions,
    decode_template,
    rsa_modulus_bits,
)

CP = "06092a864886f70d010907"  # challengePassword
EC_P384 = "301206072a8648ce3d0201310706052b81040022"  # Attribute{ecPublicKey,{secp384r1}}
ECDSA384 = "06082a8648ce3d040303"
ACP_NAME = b"rfc8994+fd739fc23c3440112233445500000000+@acp.example.com".hex()
# §4.1 RFC 8994/ACP: one critical subjectAltName with an AcpNodeName otherName.
ACP_SAN = "3049a04706082b06010505070 80a".replace(" ", "") + "a03b1639" + ACP_NAME
ACP = "3068306606092a864886f70d01090e3159305730550603551d110101ff044b" + ACP_SAN
# §4.2 RFC 7030's example as RFC 9908 corrects it: the MAC address inside a
# subjectDirectoryAttributes extension of the one extensionRequest.
RFC7030_B64 = (
    "ME4GCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMCMGCSqGSIb3DQEJDjEWMBQwEgYDVR0J"
    "BAswCQYHKwYBAQEBFgYIKoZIzj0EAwM="
)
SDA_VALUE = "300906072b060101010116"
# §4.3: an otherName subjectAltName, potato@example.com.
POTATO_SAN = "3022a02006082b0601050507080aa0141612" + b"potato@example.com".hex()
POTATO = (
    "3067"
    + CP
    + EC_P384
    + "303c06092a864886f70d01090e312f302d302b0603551d110424"
    + POTATO_SAN
    + ECDSA384
)
# §4.4: an RSA key of 4096 bits, signed with SHA-256.
HARKINS01 = "3029" + CP + "301106092a864886f70d010101310402021000" + "06092a864886f70d01010b"
# §3.4: CN to fill in, OU=myDept, OU=myGroup, a P-256 key, subjectAltName with DNS
# www.myServer.com and an IP address to fill in, keyUsage critical digitalSignature and
# keyAgreement, extKeyUsage to fill in.
TEMPLATE = (
    "308193020100302c310730050603550403310f300d060355040b0c066d79446570743110300e0603"
    "55040b0c076d7947726f7570a015301306072a8648ce3d020106082a8648ce3d030107a1493047060b"
    "2a864886f70d010910023e31383036301d0603551d110416301482107777772e6d795365727665722e"
    "636f6d8700300e0603551d0f0101ff04040302038830050603551d25"
)
TEMPLATE_SUBJECT = "CN=*, OU=myDept, OU=myGroup"
TEMPLATE_EXTENSIONS = (
    "subjectAltName = dns:www.myServer.com, ip:*; "
    "keyUsage = critical, digitalSignature, keyAgreement; extKeyUsage = *"
)
# §4.5 as the RFC's source repository holds it: a P-384 key, the subject serialNumber and
# ecdsa-with-SHA384, the serialNumber written (the pre-RFC 9908 way) as a bare OID in the
# extensionRequest; served from the legacy `csrattrs` form.
HARKINS02_B64 = (
    "MD0GCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBIGCSqGSIb3DQEJDjEFBgNVBAUGCCqGSM49BAMD"
)
# §4.6: a P-521 key, serialNumber, friendlyName and favoriteDrink, ecdsa-with-SHA512.
HARKINS03_B64 = (
    "MFQGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAjMCkGCSqGSIb3DQEJDjEcBgNVBAUGCSqGSIb3DQEJFAYK"
    "CZImiZPyLGQBBQYIKoZIzj0EAwQ="
)
EXAMPLES = {
    "acp": bytes.fromhex(ACP),
    "rfc7030": base64.b64decode(RFC7030_B64),
    "potato": bytes.fromhex(POTATO),
    "harkins01": bytes.fromhex(HARKINS01),
    "harkins02": base64.b64decode(HARKINS02_B64),
    "harkins03": base64.b64decode(HARKINS03_B64),
}

LABELS = {
    "acp": LabelConfig(
        name="acp",
        csrattrs_extensions=f"subjectAltName = critical, der:{ACP_SAN}",
        enforce_csrattrs=True,
        password_subjects="any",
    ),
    "rfc7030": LabelConfig(
        name="rfc7030",
        csrattrs="challengePassword, id-ecPublicKey=secp384r1, extensionRequest, ecdsa-with-SHA384",
        csrattrs_extensions=f"subjectDirectoryAttributes = der:{SDA_VALUE}",
    ),
    "potato": LabelConfig(
        name="potato",
        csrattrs="challengePassword, id-ecPublicKey=secp384r1, extensionRequest, ecdsa-with-SHA384",
        csrattrs_extensions=f"subjectAltName = der:{POTATO_SAN}",
    ),
    "template": LabelConfig(
        name="template",
        csrattrs="id-ecPublicKey=secp256r1",
        csrattrs_subject=TEMPLATE_SUBJECT,
        csrattrs_extensions=TEMPLATE_EXTENSIONS,
        enforce_csrattrs=True,
        password_subjects="any",
    ),
    "harkins01": LabelConfig(
        name="harkins01",
        csrattrs="challengePassword, rsaEncryption=4096, sha256WithRSAEncryption",
        enforce_csrattrs=True,
        password_subjects="any",
    ),
    "harkins02": LabelConfig(
        name="harkins02",
        csrattrs="challengePassword, id-ecPublicKey=secp384r1, extensionRequest=2.5.4.5, "
        "ecdsa-with-SHA384",
    ),
    # /serverkeygen cannot make P-521 keys, so a label that announces only P-521 turns it off.
    "harkins03": LabelConfig(
        name="harkins03",
        csrattrs="challengePassword, id-ecPublicKey=1.3.132.0.35, "
        "extensionRequest=2.5.4.5+1.2.840.113549.1.9.20+0.9.2342.19200300.100.1.5, "
        "1.2.840.10045.4.3.4",
        serverkeygen=False,
    ),
    "rsatemplate": LabelConfig(
        name="rsatemplate", csrattrs="rsaEncryption=3072", csrattrs_subject="CN=*"
    ),
    "filled": LabelConfig(
        name="filled",
        csrattrs_subject=TEMPLATE_SUBJECT,
        csrattrs_extensions=TEMPLATE_EXTENSIONS,
        password_subjects="any",
    ),
}
TLS12 = TlsInfo("TLS1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", tls_unique=bytes(12))
ANON = PeerIdentity("192.0.2.10:40000", TLS12)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="RFC 9908 Test CA", key_type=KeyType.EC_P256, validity_days=30
    )


_RSA_KEYS: dict[int, rsa.RSAPrivateKey] = {}


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    if bits not in _RSA_KEYS:
        _RSA_KEYS[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _RSA_KEYS[bits]


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


def served(service: EstService, label: str) -> bytes:
    response = service.handle(
        HttpRequest("GET", f"/.well-known/est/{label}/csrattrs", (), b""), ANON
    )
    assert response.status == 200
    return wire.decode_base64_der(response.body, "csrattrs")


def enroll(
    service: EstService, label: str, csr: x509.CertificateSigningRequest
) -> x509.Certificate:
    token = base64.b64encode(b"alice:alice-pw").decode()
    body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    headers = (("content-type", "application/pkcs10"), ("authorization", f"Basic {token}"))
    request = HttpRequest("POST", f"/.well-known/est/{label}/simpleenroll", headers, body)
    response = service.handle(request, ANON)
    assert response.status == 200
    [cert] = wire.decode_certs_only(response.body)
    return cert


def template_csr(
    *,
    subject: list[tuple[x509.ObjectIdentifier, str]] | None = None,
    san: list[x509.GeneralName] | None = None,
    key_usage: tuple[bool, bool] | None = (True, True),
    critical: bool = True,
    eku: bool = True,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR that follows the §3.4 template, unless told to deviate."""
    names = subject or [
        (NameOID.COMMON_NAME, "device-1"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "myDept"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "myGroup"),
    ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(oid, value) for oid, value in names])
    )
    if san is None:
        san = [x509.DNSName("www.myServer.com"), x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if key_usage is not None:
        digital, agreement = key_usage
        usage = x509.KeyUsage(
            digital_signature=digital,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=agreement,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=critical)
    if eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(key or ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


# --- every example decodes ---


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_decodes_with_pyasn1_modules(name: str) -> None:
    der = EXAMPLES[name]
    decoded, rest = der_decoder.decode(der, asn1Spec=rfc7030.CsrAttrs())
    assert rest == b""
    ours = wire.decode_csrattrs(der)
    assert len(ours) == len(decoded)
    for item in ours:
        if (
            isinstance(item, wire.CsrAttribute)
            and item.oid == oids.EXTENSION_REQUEST.dotted_string
            and isinstance(item.values[0], bytes)
        ):
            # RFC 9908 §3.2: exactly one value, of type Extensions.
            (value,) = item.values
            assert isinstance(value, bytes)
            extensions, rest = der_decoder.decode(value, asn1Spec=rfc5280.Extensions())
            assert rest == b"" and len(extensions) == len(decode_extensions(value))


def test_template_example_decodes() -> None:
    template = decode_template(bytes.fromhex(TEMPLATE))
    assert template.subject is not None
    assert [slot.oid for slot in template.subject] == ["2.5.4.3", "2.5.4.11", "2.5.4.11"]
    assert template.subject[0].value is None
    assert template.key_algorithm == (
        oids.ID_EC_PUBLIC_KEY.dotted_string,
        bytes.fromhex("06082a8648ce3d030107"),
    )
    assert [(s.oid, s.critical, s.value is None) for s in template.extensions] == [
        ("2.5.29.17", False, False),
        ("2.5.29.15", True, False),
        ("2.5.29.37", False, True),
    ]


def test_duplicate_extension_is_refused() -> None:
    # RFC 9908 §3.2: no extnID twice.
    twice = bytes.fromhex("300e" + "30050603551d25" * 2)
    with pytest.raises(ValueError, match="twice"):
        decode_extensions(twice)


# --- every example is served ---


@pytest.mark.parametrize(
    "name", ["acp", "rfc7030", "potato", "harkins01", "harkins02", "harkins03"]
)
def test_example_is_served_byte_for_byte(service: EstService, name: str) -> None:
    assert served(service, name) == EXAMPLES[name]


def test_template_example_is_served_byte_for_byte(service: EstService) -> None:
    items = wire.decode_csrattrs(served(service, "template"))
    # RFC 8951 §4 first: the key type as an attribute, never a bare OID.
    assert items[0] == wire.CsrAttribute(
        oids.ID_EC_PUBLIC_KEY.dotted_string, (oids.SECP256R1.dotted_string,)
    )
    # The complete extension for older clients, then the template with everything.
    request, template = items[1], items[2]
    assert isinstance(request, wire.CsrAttribute) and isinstance(template, wire.CsrAttribute)
    assert request.oid == oids.EXTENSION_REQUEST.dotted_string
    assert [s.oid for s in decode_extensions(request.values[0])] == ["2.5.29.15"]  # type: ignore[arg-type]
    assert template.oid == "1.2.840.113549.1.9.16.2.61"
    assert template.values == (bytes.fromhex(TEMPLATE),)


# --- config errors name the key ---


@pytest.mark.parametrize(
    ("changes", "key", "text"),
    [
        ({"csrattrs_subject": "CN"}, "csrattrs_subject", "TYPE=VALUE"),
        ({"csrattrs_subject": "XX=1"}, "csrattrs_subject", "unknown subject attribute"),
        ({"csrattrs_extensions": "basicConstraints2 = *"}, "csrattrs_extensions", "unknown"),
        ({"csrattrs_extensions": "2.5.29.19 = der:3000"}, "csrattrs_extensions", "by the CA"),
        ({"csrattrs_extensions": "keyUsage = keyCertSign"}, "csrattrs_extensions", "keyUsage"),
        ({"csrattrs_extensions": "keyUsage=*; keyUsage=*"}, "csrattrs_extensions", "twice"),
        ({"csrattrs_extensions": "2.5.29.9 = der:30"}, "csrattrs_extensions", "DER"),
        (
            {"csrattrs": "extensionRequest=macAddress", "csrattrs_extensions": "extKeyUsage=*"},
            "csrattrs_extensions",
            "one extensionRequest",
        ),
    ],
)
def test_bad_prescription_names_its_key(changes: dict[str, str], key: str, text: str) -> None:
    label = replace(LabelConfig(name="x"), **changes)  # type: ignore[arg-type]
    with pytest.raises(LabelError, match=text) as caught:
        check_label(label)
    assert caught.value.key == key


def test_subject_and_extension_forms() -> None:
    assert parse_subject("") is None
    assert parse_extensions("  ") == ()
    (slot,) = parse_extensions("extKeyUsage = critical, clientAuth, 1.3.6.1.5.5.7.3.4")
    assert (
        slot.critical
        and slot.value
        == x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.4")]
        ).public_bytes()
    )


# --- every example is enforced ---


def test_template_compliant_csr_is_issued_with_the_prescribed_values(service: EstService) -> None:
    cert = enroll(service, "template", template_csr())
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.public_bytes() == bytes.fromhex("03020388")


@pytest.mark.parametrize(
    ("csr_args", "reason"),
    [
        ({"key_usage": None}, "missing extension keyUsage"),
        ({"key_usage": (True, False)}, "keyUsage must carry exactly"),
        ({"critical": False}, "keyUsage must be critical"),
        ({"eku": False}, "missing extension extKeyUsage"),
        ({"san": []}, "missing extension subjectAltName"),
        ({"san": [x509.DNSName("www.myServer.com")]}, "needs a ip name filled in"),
        ({"san": [x509.DNSName("evil.example")]}, "lacks 1 name"),
        (
            {"subject": [(NameOID.COMMON_NAME, "d"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "myDept")]},
            "subject needs 2",
        ),
        (
            {
                "subject": [
                    (NameOID.COMMON_NAME, "d"),
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, "myDept"),
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, "otherGroup"),
                ]
            },
            "must be 'myGroup'",
        ),
        (
            {
                "subject": [
                    (NameOID.COMMON_NAME, "d"),
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, "myDept"),
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, "myGroup"),
                    (NameOID.ORGANIZATION_NAME, "Admins"),
                ]
            },
            "the template 0",
        ),
        ({"key": ec.generate_private_key(ec.SECP384R1())}, "key must be ec-secp256r1"),
    ],
)
def test_template_deviation_is_refused(
    service: EstService, csr_args: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidCsr, match=reason) as caught:
        enroll(service, "template", template_csr(**csr_args))  # type: ignore[arg-type]
    assert caught.value.status == 400


def test_acp_example_is_enforced(service: EstService) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")])
    acp = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, bytes.fromhex(ACP_SAN))
    good = x509.CertificateSigningRequestBuilder().subject_name(name).add_extension(acp, True)
    cert = enroll(service, "acp", good.sign(key, hashes.SHA256()))
    san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert san.critical and san.value.public_bytes() == bytes.fromhex(ACP_SAN)
    other = x509.SubjectAlternativeName([x509.DNSName("node.example")])
    bad = x509.CertificateSigningRequestBuilder().subject_name(name).add_extension(other, True)
    with pytest.raises(InvalidCsr, match="lacks 1 name"):
        enroll(service, "acp", bad.sign(key, hashes.SHA256()))
    plain = x509.CertificateSigningRequestBuilder().subject_name(name).add_extension(acp, False)
    with pytest.raises(InvalidCsr, match="must be critical"):
        enroll(service, "acp", plain.sign(key, hashes.SHA256()))


def test_without_enforcement_the_ca_fills_in(service: EstService) -> None:
    # A CSR that leaves out every prescribed value still gets a certificate that carries them.
    bare = template_csr(
        subject=[(NameOID.COMMON_NAME, "device-2")], san=[], key_usage=None, eku=False
    )
    cert = enroll(service, "filled", bare)
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert units == ["myDept", "myGroup"]
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.public_bytes() == bytes.fromhex("03020388")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.myServer.com"]


def test_rsa_size_example_is_enforced(service: EstService) -> None:
    # §4.4: the challengePassword (any value here: this label does not link, §3.5), an RSA key of
    # 4096 bits, sha256WithRSAEncryption.
    def request(bits: int, digest: hashes.SHA256 | hashes.SHA384) -> x509.CertificateSigningRequest:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa-device")])
        builder = x509.CertificateSigningRequestBuilder().subject_name(name)
        builder = builder.add_attribute(oids.CHALLENGE_PASSWORD, b"secret")
        return builder.sign(rsa_key(bits), digest)

    cert = enroll(service, "harkins01", request(4096, hashes.SHA256()))
    assert cert.public_key().key_size == 4096  # type: ignore[union-attr]
    with pytest.raises(InvalidCsr, match="key must be rsa-4096, not rsa-2048"):
        enroll(service, "harkins01", request(2048, hashes.SHA256()))
    with pytest.raises(InvalidCsr, match="signature algorithm must be sha256WithRSAEncryption"):
        enroll(service, "harkins01", request(4096, hashes.SHA384()))


def test_rsa_size_goes_in_the_template_as_a_dummy_key(service: EstService) -> None:
    items = wire.decode_csrattrs(served(service, "rsatemplate"))
    # RFC 8951 §4: the size as an attribute; RFC 9908 §3.4: a dummy key of that size.
    assert items[0] == wire.CsrAttribute(
        oids.RSA_ENCRYPTION.dotted_string, (bytes.fromhex("02020c00"),)
    )
    template = find_template(items)
    assert template is not None and template.public_key is not None
    assert rsa_modulus_bits(template.public_key) == 3072
    assert template_key_type(template) is KeyType.RSA_3072


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("csrattrs_subject = CN", "csrattrs_subject"),
        ("csrattrs_extensions = keyUsage = flying", "csrattrs_extensions"),
    ],
)
def test_config_error_names_the_file_section_and_key(tmp_path: Path, line: str, key: str) -> None:
    path = tmp_path / "est.cfg"
    path.write_text(f"[label:iot]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        check_csrattrs(load_config(path))
    assert f"[label:iot] {key}:" in str(info.value)


# --- hostile input: a server's template, an operator's text ---

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=149), st.integers(0, 255))
def test_template_decoders_raise_only_value_error(noise: bytes, at: int, byte: int) -> None:
    mutated = bytearray(bytes.fromhex(TEMPLATE))
    mutated[at] = byte
    for der in (noise, bytes(mutated), bytes(mutated[:at])):
        for decode in (decode_template, decode_extensions):
            try:
                decode(der)
            except ValueError:
                pass


@PROPERTY
@given(st.text(max_size=80))
@example("subjectAltName = ip:*, dirname:*, email:a@b; 1.2.3 = der:0500")
@example("CN=*, OU=, =x")
def test_config_text_raises_only_value_error(text: str) -> None:
    for parse in (parse_subject, parse_extensions):
        try:
            parse(text)
        except ValueError:
            pass


# --- the client side: building a CSR from a template ---


def test_client_fills_the_template_from_the_options() -> None:
    template = decode_template(bytes.fromhex(TEMPLATE))
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="asks for a ip subjectAltName"):
        client_csr(key, template, common_name="dev")
    csr = client_csr(key, template, common_name="dev", ip_addresses=["192.0.2.1"])
    problems = prescription_problems(
        Prescription(parse_subject(TEMPLATE_SUBJECT), parse_extensions(TEMPLATE_EXTENSIONS)), csr
    )
    assert problems == []


def test_client_asks_for_subject_values_the_template_leaves_open() -> None:
    template = CsrTemplate(subject=parse_subject("CN=*, O=*, OU=fixed"))
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="--subject-value"):
        client_csr(key, template, common_name="dev")
    values = dict([parse_subject_value("O=Example")])
    csr = client_csr(key, template, common_name="dev", subject_values=values)
    assert csr.subject.rfc4514_string() == "OU=fixed,O=Example,CN=dev"
    with pytest.raises(ValueError, match="TYPE=VALUE"):
        parse_subject_value("Nickname=x")
