"""Factory (IDevID) certificates as values: templates, 802.1AR shapes, CRLs, config keys."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from python_est.config import load_config
from python_est.config.idevid import parse_template
from python_est.errors import ConfigError
from python_est.oids import ID_KP_CMC_RA
from python_est.policy import ClientChainValidator
from python_est.policy.factory import hardware_serial, template_subject
from python_est.policy.idevid import ManufacturerTrust
from python_est.state.manufacturers import load_manufacturers
from tests.conftest import captured_records
from tests.idevid_support import (
    FOREVER,
    Manufacturer,
    crl,
    hardware_module_name,
    idevid,
    manufacturer,
)

NOW = datetime.now(timezone.utc)


def named(serial: str) -> x509.Certificate:
    maker = manufacturer()
    return idevid(maker, serial)[0]


@pytest.mark.parametrize(
    ("template", "serial", "expected"),
    [
        ("CN={serialNumber}", "SN-1", [(NameOID.COMMON_NAME, "SN-1")]),
        # Filled value by value: name syntax in a serial number stays inside one value.
        ("CN={serialNumber}", "x,CN=admin", [(NameOID.COMMON_NAME, "x,CN=admin")]),
        # PrintableString allows + and =: a multi-valued RDN stays one value too.
        ("CN={serialNumber}", "a+O=evil", [(NameOID.COMMON_NAME, "a+O=evil")]),
        (
            "CN=dev-{hwSerialNum},O=Acme",
            "H7",
            [(NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.COMMON_NAME, "dev-H7")],
        ),
    ],
)
def test_templates_fill_values_never_name_syntax(
    template: str, serial: str, expected: list[tuple[x509.ObjectIdentifier, str]]
) -> None:
    subject = template_subject(template, named(serial))
    assert [(a.oid, a.value) for a in subject] == expected


def test_a_template_value_the_certificate_lacks_is_a_refusal() -> None:
    maker = manufacturer()
    bare = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no serial")])
    cert, _ = idevid(maker, "SN-1", subject=bare)
    with pytest.raises(ValueError, match="no serialNumber"):
        template_subject("CN={serialNumber}", cert)
    assert template_subject("CN={hwSerialNum}", cert) == x509.Name.from_rfc4514_string("CN=SN-1")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "needs a template"),
        ("CN=fixed", "no placeholder"),
        ("CN={mac}", "unknown placeholder"),
        ("CN={serialNumber", "no placeholder"),
        ("not a name", "not an RFC 4514 name"),
    ],
)
def test_bad_templates_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_template(text)


def leaf_with_san(maker: Manufacturer, san: x509.SubjectAlternativeName) -> x509.Certificate:
    """An 802.1AR-style leaf without a subject: only a critical subjectAltName names it."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(maker.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(FOREVER)
        .add_extension(san, critical=True)
        .sign(maker.key, hashes.SHA256())
    )


def test_hardware_serial_is_text_when_printable_else_hex() -> None:
    assert hardware_serial(named("AB-12")) == "AB-12"
    binary = x509.SubjectAlternativeName([hardware_module_name(b"\x00\xff,")])
    assert hardware_serial(leaf_with_san(manufacturer(), binary)) == "00FF2C"
    two = x509.SubjectAlternativeName([hardware_module_name(b"A"), hardware_module_name(b"B")])
    assert hardware_serial(leaf_with_san(manufacturer(), two)) is None


def trust(maker: Manufacturer, *crls: x509.CertificateRevocationList) -> ManufacturerTrust:
    return ManufacturerTrust([maker.cert], [(maker.cert, c) for c in crls])


def test_802_1ar_shapes_validate_under_a_manufacturer_only() -> None:
    maker = manufacturer()
    shapes = [
        idevid(maker, "SN-1")[0],  # no EKU, non-critical keyUsage, hardwareModuleName, 9999
        leaf_with_san(maker, x509.SubjectAlternativeName([hardware_module_name(b"SN-2")])),
        idevid(maker, "SN-3", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])[0],
    ]
    assert shapes[0].not_valid_after_utc.year == 9999
    for cert in shapes:
        result = trust(maker).validate([cert], NOW)
        assert (result.valid, result.factory, result.anchor) == (True, True, maker.cert), cert
    # The EKU relaxation is for manufacturer anchors only: as one of our own anchors, the same
    # CA's certificate without EKU authenticates nobody.
    own = ClientChainValidator([maker.cert], lambda serial: False).validate([shapes[0]], now=NOW)
    assert (own.valid, own.reason) == (False, "no EKU clientAuth")
    # Through the validator: our anchors first, then the manufacturer's.
    both = ClientChainValidator(
        [manufacturer("Our CA").cert], lambda serial: False, manufacturers=trust(maker)
    )
    assert both.validate([shapes[0]], now=NOW).factory


def test_a_manufacturer_cmc_ra_is_no_ra_of_ours() -> None:
    maker = manufacturer()
    cert, _ = idevid(maker, "SN-1", eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA])
    result = trust(maker).validate([cert], NOW)
    assert result.valid and not result.is_ra


def test_crls_revoke_and_a_stale_crl_fails_closed() -> None:
    maker = manufacturer()
    good, revoked = idevid(maker, "SN-1")[0], idevid(maker, "SN-2")[0]
    fresh = trust(maker, crl(maker, [revoked]))
    assert fresh.validate([good], NOW).valid
    refused = fresh.validate([revoked], NOW)
    assert (refused.valid, refused.reason) == (
        False,
        "factory certificate revoked by its manufacturer",
    )
    # Now, not the module's NOW: in a long run NOW can precede this nextUpdate.
    now = datetime.now(timezone.utc)
    stale = trust(maker, crl(maker, [], next_update=now - timedelta(minutes=1)))
    result = stale.validate([good], now)
    assert not result.valid and "expired at" in result.reason


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text(f"[server]\nstate_dir = state\n{text}")
    return path


def test_config_keys(tmp_path: Path) -> None:
    maker, stranger = manufacturer(), manufacturer("Other")
    ca_file = tmp_path / "maker.pem"
    ca_file.write_bytes(maker.cert.public_bytes(Encoding.PEM))
    crl_file = tmp_path / "maker.crl"
    crl_file.write_bytes(crl(maker, []).public_bytes(Encoding.PEM))
    foreign = tmp_path / "foreign.crl"
    foreign.write_bytes(crl(stranger, []).public_bytes(Encoding.DER))
    text = f"[label:f]\nmanufacturer_cas = {ca_file}\nmanufacturer_crls = maker.crl\n"
    config = load_config(write(tmp_path, text))
    label = config.labels["f"]
    assert (label.manufacturer_crls, label.idevid_subject) == ((crl_file,), "same")
    loaded = load_manufacturers(config)
    assert loaded.anchors == {"f": (maker.cert,)} and loaded.crls[0][0] == maker.cert
    for extra, key, reason in (
        ("[label:g]\nmanufacturer_crls = maker.crl\n", "manufacturer_crls", "needs"),
        ("[label:g]\nidevid_subject = template\n", "idevid_template", "needs a template"),
        ("[label:g]\nidevid_subject = cn\n", "idevid_subject", "must be one of"),
    ):
        with pytest.raises(ConfigError, match=rf"\[label:g\] {key}: .*{reason}"):
            load_config(write(tmp_path, extra))
    for extra, key, reason in (
        (
            f"[label:g]\nmanufacturer_cas = {ca_file}\nmanufacturer_crls = {foreign}\n",
            "manufacturer_crls",
            "not signed by a certificate of manufacturer_cas",
        ),
        ("[label:g]\nmanufacturer_cas = missing.pem\n", "manufacturer_cas", "does not exist"),
        (f"[label:g]\nmanufacturer_cas = {crl_file}\n", "manufacturer_cas", "no certificate"),
        (
            f"[label:g]\nmanufacturer_cas = {ca_file}\nmanufacturer_crls = {ca_file}\n",
            "manufacturer_crls",
            "is not a CRL",
        ),
    ):
        with pytest.raises(ConfigError, match=rf"\[label:g\] {key}: .*{reason}"):
            load_manufacturers(load_config(write(tmp_path, extra)))


def intermediate(root: Manufacturer) -> Manufacturer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme Line 2 CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(FOREVER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.key, hashes.SHA384())
    )
    return Manufacturer(key, cert)


def test_a_root_crl_revokes_a_listed_intermediate_and_every_crl_counts() -> None:
    root = manufacturer()
    line = intermediate(root)
    cert = idevid(line, "SN-1")[0]
    # Root and intermediate both listed (both anchors): the path may end at the intermediate,
    # and the root's CRL revoking the intermediate must still be consulted.
    listed = ManufacturerTrust([root.cert, line.cert], [])
    assert listed.validate([cert], NOW).valid
    revoking = ManufacturerTrust([root.cert, line.cert], [(root.cert, crl(root, [line.cert]))])
    assert (
        revoking.validate([cert], NOW).reason == "factory certificate revoked by its manufacturer"
    )
    # Two CRLs of one CA (two labels): the one that lists the certificate wins.
    both = ManufacturerTrust(
        [line.cert], [(line.cert, crl(line, [])), (line.cert, crl(line, [cert]))]
    )
    assert not both.validate([cert], NOW).valid


def test_a_stale_crl_is_loaded_with_a_warning(tmp_path: Path) -> None:
    maker = manufacturer()
    ca_file, crl_file = tmp_path / "maker.pem", tmp_path / "maker.crl"
    ca_file.write_bytes(maker.cert.public_bytes(Encoding.PEM))
    stale = crl(maker, [], next_update=datetime.now(timezone.utc) - timedelta(minutes=1))
    crl_file.write_bytes(stale.public_bytes(Encoding.PEM))
    text = f"[label:f]\nmanufacturer_cas = {ca_file}\nmanufacturer_crls = {crl_file}\n"
    with captured_records("python_est.idevid", logging.WARNING) as records:
        loaded = load_manufacturers(load_config(write(tmp_path, text)))
    assert len(loaded.crls) == 1
    [record] = records
    assert "[label:f] manufacturer_crls" in record.getMessage()
    assert "past its nextUpdate" in record.getMessage()
