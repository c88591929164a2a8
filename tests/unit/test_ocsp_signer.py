"""The delegated OCSP signer in the state directory: created, loaded, refused, warned about."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from python_est.ca import CertificateAuthority, certificate_pem, private_key_pem
from python_est.ca.ocsp import issue_responder
from python_est.config import Config, load_config
from python_est.errors import ConfigError
from python_est.keys import KeyType, generate_private_key
from python_est.state.ocsp import create_ocsp_signer, load_ocsp_signer
from python_est.statedir import StateDir
from tests.conftest import captured_records

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    # Made 200 days ago, so signers issued in the past can have expired by now.
    return CertificateAuthority.create_root(
        common_name="Signer CA",
        key_type=KeyType.EC_P256,
        validity_days=800,
        now=NOW - timedelta(days=200),
    )


def config_for(tmp_path: Path, signer: str = "delegated") -> Config:
    path = tmp_path / "est.cfg"
    path.write_text(f"[server]\nstate_dir = state\n[ocsp]\nsigner = {signer}\n")
    return load_config(path)


def refusal(config: Config, ca: CertificateAuthority) -> str:
    with pytest.raises(ConfigError) as caught:
        load_ocsp_signer(config, ca)
    text = str(caught.value)
    assert "[ocsp] signer" in text
    return text


def write(config: Config, cert_pem: bytes, key_pem: bytes) -> None:
    layout = StateDir(config.server.state_dir)
    layout.ocsp_signer_cert.parent.mkdir(parents=True, exist_ok=True)
    layout.ocsp_signer_cert.write_bytes(cert_pem)
    layout.ocsp_signer_key.write_bytes(key_pem)


def test_the_ca_signs_unless_delegated_is_asked_for(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    assert load_ocsp_signer(config_for(tmp_path, "ca"), ca) is None


def test_a_created_signer_loads_and_its_key_is_private(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    config = config_for(tmp_path)
    made = create_ocsp_signer(config, ca)
    layout = StateDir(config.server.state_dir)
    assert layout.ocsp_signer_key.stat().st_mode & 0o777 == 0o600
    assert layout.ocsp_signer_cert.parent.stat().st_mode & 0o777 == 0o700
    loaded = load_ocsp_signer(config, ca)
    assert loaded is not None and loaded.certificate == made.certificate
    span = made.certificate.not_valid_after_utc - made.certificate.not_valid_before_utc
    assert span <= timedelta(days=90, minutes=10)


def test_a_missing_signer_names_the_command(tmp_path: Path, ca: CertificateAuthority) -> None:
    text = refusal(config_for(tmp_path), ca)
    assert "signer.pem is missing" in text and "init --ocsp-signer" in text


def test_a_signer_of_another_ca_or_with_another_key_is_refused(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    config = config_for(tmp_path)
    other = CertificateAuthority.create_root(
        common_name="Other CA", key_type=KeyType.EC_P256, validity_days=30
    )
    foreign = issue_responder(other)
    write(config, certificate_pem(foreign.certificate), private_key_pem(foreign.private_key))
    assert "it was not issued by the CA" in refusal(config, ca)
    ours = issue_responder(ca)
    stranger_key = generate_private_key(KeyType.EC_P256)
    write(config, certificate_pem(ours.certificate), private_key_pem(stranger_key))
    assert "its key does not match" in refusal(config, ca)
    client, key = ca.issue_client_certificate(common_name="just a client")
    write(config, certificate_pem(client), private_key_pem(key))
    assert "lacks the extendedKeyUsage id-kp-OCSPSigning" in refusal(config, ca)
    write(config, b"not pem", b"not pem either")
    refusal(config, ca)


def test_an_expired_signer_is_refused_and_one_close_to_expiry_warned_about(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    config = config_for(tmp_path)
    expired = issue_responder(ca, validity_days=90, now=NOW - timedelta(days=100))
    write(config, certificate_pem(expired.certificate), private_key_pem(expired.private_key))
    assert "it has expired" in refusal(config, ca)

    ending = issue_responder(ca, validity_days=90, now=NOW - timedelta(days=85))
    write(config, certificate_pem(ending.certificate), private_key_pem(ending.private_key))
    with captured_records("python_est.ocsp", logging.WARNING) as records:
        assert load_ocsp_signer(config, ca) is not None
    [record] = records
    assert "expires on" in record.getMessage() and "--ocsp-signer" in record.getMessage()

    fresh = create_ocsp_signer(config, ca)
    with captured_records("python_est.ocsp", logging.WARNING) as records:
        loaded = load_ocsp_signer(config, ca)
    assert loaded is not None and loaded.certificate == fresh.certificate
    assert records == []
