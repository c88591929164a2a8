"""Factory (IDevID) certificate onboarding (issue 18 item 3) over real TLS.

802.1AR-style certificates made in the test (`tests.idevid_support`) authenticate /simpleenroll
on the labels trusting their manufacturer, for the subject each label's `idevid_subject` maps
them to, and nothing else: another subject, another label, /simplereenroll, /serverkeygen, a
revoked, expired or look-alike factory certificate, one claiming cmcRA, all refused.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from est_harness import RunningServer, build_request, csr_body, daemon, https, write_credentials
from python_est.ca import certificate_pem
from python_est.cli import main
from python_est.oids import ID_KP_CMC_RA
from tests.idevid_support import crl, idevid, manufacturer

pytestmark = pytest.mark.integration

EST = "/.well-known/est"
Start = Callable[[str], RunningServer]
Credentials = tuple[Path, Path]


class Factory:
    """A manufacturer, its files, and a server whose labels trust it in each mapping mode."""

    def __init__(self, tmp_path: Path, start: Start) -> None:
        self.dir = tmp_path / "factory"
        self.dir.mkdir()
        self.maker = manufacturer()
        self.revoked, self.revoked_key = idevid(self.maker, "SN-REVOKED")
        ca_file = self.dir / "acme-ca.pem"
        ca_file.write_bytes(certificate_pem(self.maker.cert))
        crl_file = self.dir / "acme.crl"
        crl_file.write_bytes(crl(self.maker, [self.revoked]).public_bytes(Encoding.DER))
        trust = f"manufacturer_cas = {ca_file}\nmanufacturer_crls = {crl_file}\n"
        self.server = start(
            f"[label:same]\n{trust}"
            f"[label:tmpl]\n{trust}idevid_subject = template\n"
            "idevid_template = CN={serialNumber},OU={hwSerialNum},O=Onboarded\n"
            f"[label:reg]\n{trust}idevid_subject = registration\n"
            "[label:other]\n"
        )

    def credentials(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Credentials:
        return write_credentials(self.dir, f"c{cert.serial_number:x}", cert, key)

    def post(
        self,
        label: str,
        subject: x509.Name,
        credentials: Credentials | None,
        *,
        operation: str = "simpleenroll",
        sans: tuple[x509.GeneralName, ...] = (),
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> tuple[int, str, list[x509.Certificate]]:
        """POST a CSR for `subject` (with `key`, or a new one) presenting `credentials`."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        csr = builder.sign(key, hashes.SHA256())
        port = self.server.port
        request = build_request(
            "POST",
            f"{EST}/{label}/{operation}",
            csr_body(csr),
            {"Content-Type": "application/pkcs10", "User-Agent": "idevid-test"},
            port,
        )
        reply = https(port, request, cafile=self.server.ca_file, client_cert=credentials)
        certs = reply.certificates() if reply.status == 200 and operation != "serverkeygen" else []
        return reply.status, reply.body.decode(errors="replace"), certs


def cn(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


@pytest.fixture
def factory(tmp_path: Path, start_est_server: Start) -> Factory:
    return Factory(tmp_path, start_est_server)


def test_an_idevid_enrolls_its_own_subject_and_the_result_renews(factory: Factory) -> None:
    cert, key = idevid(factory.maker, "SN-0001")
    ldevid_key = ec.generate_private_key(ec.SECP256R1())
    creds = factory.credentials(cert, key)
    status, body, [issued] = factory.post("same", cert.subject, creds, key=ldevid_key)
    assert status == 200, body
    assert issued.subject == cert.subject
    issued.verify_directly_issued_by(factory.server.state.ca.certificate)
    entry = factory.server.state.ledger.get(issued.serial_number)
    assert entry is not None and entry.requester == cert.subject.rfc4514_string()
    # The LDevID is one of ours: it renews like any device certificate.
    ours = write_credentials(factory.dir, "ldevid", issued, ldevid_key)
    status, body, [renewed] = factory.post("same", cert.subject, ours, operation="simplereenroll")
    assert status == 200, body
    assert renewed.subject == cert.subject


def test_template_maps_the_serial_number_and_the_hardware_module_name(factory: Factory) -> None:
    cert, key = idevid(factory.maker, "SN-0002")
    creds = factory.credentials(cert, key)
    wanted = x509.Name.from_rfc4514_string("CN=SN-0002,OU=SN-0002,O=Onboarded")
    status, body, [issued] = factory.post("tmpl", wanted, creds)
    assert status == 200, body
    assert issued.subject == wanted
    status, body, _ = factory.post("tmpl", cn("SN-0002"), creds)
    assert status == 403 and "is not the one this factory certificate obtains" in body


def test_registration_is_found_by_serial_number_and_used_up(
    factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = idevid(factory.maker, "SN-0003")
    creds = factory.credentials(cert, key)
    cfg = str(factory.server.root / "est.cfg")
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        args = ["devices", "add", "--label", "reg", "--name", "SN-0003", "--subject", "CN=pump-3"]
        assert main(["-c", cfg, *args]) == 0
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    capsys.readouterr()
    status, body, _ = factory.post("reg", cn("pump-4"), creds)
    assert status == 403 and "registered for" in body
    status, body, [issued] = factory.post("reg", cn("pump-3"), creds)
    assert status == 200, body
    assert issued.subject == cn("pump-3")
    status, body, _ = factory.post("reg", cn("pump-3"), creds)
    assert status == 403 and "used already" in body
    other, other_key = idevid(factory.maker, "SN-0099")  # not registered
    status, body, _ = factory.post("reg", cn("pump-3"), factory.credentials(other, other_key))
    assert status == 403 and "no device is registered as 'SN-0099'" in body


# --- attacks ----------------------------------------------------------------------------------


def test_a_factory_certificate_cannot_ask_for_another_subject(factory: Factory) -> None:
    cert, key = idevid(factory.maker, "SN-0010")
    creds = factory.credentials(cert, key)
    status, body, _ = factory.post("same", cn("admin"), creds)
    assert status == 403 and "differs from the factory certificate's subject" in body
    extra = (x509.DNSName("admin.example"),)
    status, body, _ = factory.post("same", cert.subject, creds, sans=extra)
    assert status == 403 and "is not in the factory certificate" in body


def test_a_revoked_factory_certificate_authenticates_nobody(factory: Factory) -> None:
    creds = factory.credentials(factory.revoked, factory.revoked_key)
    status, body, _ = factory.post("same", factory.revoked.subject, creds)
    assert status == 401 and "revoked by its manufacturer" in body


def test_a_factory_certificate_is_refused_on_a_label_not_trusting_its_maker(
    factory: Factory,
) -> None:
    cert, key = idevid(factory.maker, "SN-0011")
    creds = factory.credentials(cert, key)
    status, body, _ = factory.post("other", cert.subject, creds)
    assert status == 401 and "manufacturer this label does not trust" in body


def test_a_factory_certificate_does_not_reenroll_or_generate_keys(factory: Factory) -> None:
    cert, key = idevid(factory.maker, "SN-0012")
    creds = factory.credentials(cert, key)
    status, body, _ = factory.post("same", cert.subject, creds, operation="simplereenroll")
    assert status == 403 and "authenticates only /simpleenroll" in body
    status, body, _ = factory.post("same", cert.subject, creds, operation="serverkeygen")
    assert status == 401 and "authenticates only /simpleenroll" in body


def test_a_look_alike_manufacturer_is_refused(factory: Factory) -> None:
    forger = manufacturer()  # the same name, another key
    assert forger.cert.subject == factory.maker.cert.subject
    cert, key = idevid(forger, "SN-0013")
    status, body, _ = factory.post("same", cert.subject, factory.credentials(cert, key))
    assert status == 401 and "client certificate not accepted: factory certificate" in body


def test_an_expired_factory_certificate_is_refused(factory: Factory) -> None:
    past = datetime.now(timezone.utc) - timedelta(days=2)
    cert, key = idevid(
        factory.maker, "SN-0014", not_before=past - timedelta(days=365), not_after=past
    )
    status, body, _ = factory.post("same", cert.subject, factory.credentials(cert, key))
    assert status == 401 and "client certificate not accepted: factory certificate" in body


def test_a_factory_certificate_is_not_an_ra_nor_a_server_certificate(factory: Factory) -> None:
    # A manufacturer's cmcRA does not make an RA of ours: the subject rule still holds.
    cert, key = idevid(
        factory.maker, "SN-0015", eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA]
    )
    status, body, _ = factory.post("same", cn("someone-else"), factory.credentials(cert, key))
    assert status == 403 and "differs from the factory certificate's subject" in body
    # An EKU that is present must allow clientAuth (only its absence is relaxed).
    server_only, server_key = idevid(
        factory.maker, "SN-0016", eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    creds = factory.credentials(server_only, server_key)
    status, body, _ = factory.post("same", server_only.subject, creds)
    assert status == 401 and "required EKU not found" in body


def test_a_factory_certificate_is_not_taken_for_one_of_our_device_certificates(
    factory: Factory,
) -> None:
    # A device certificate of ours with the same subject exists; the factory certificate
    # still renews nothing and obtains nothing but its own mapping.
    cert, key = idevid(factory.maker, "SN-0017")
    status, body, [ours] = factory.post("same", cert.subject, factory.credentials(cert, key))
    assert status == 200, body
    assert ours.subject == cert.subject
    for label in ("same", "other"):
        status, body, _ = factory.post(
            label, cert.subject, factory.credentials(cert, key), operation="simplereenroll"
        )
        assert status == 403, body


def test_a_new_crl_applies_on_sighup_and_a_foreign_one_is_refused(tmp_path: Path) -> None:
    maker, stranger = manufacturer(), manufacturer("Someone Else's CA")
    cert, key = idevid(maker, "SN-0100")
    files = tmp_path / "factory"
    files.mkdir()
    ca_file, crl_file = files / "acme-ca.pem", files / "acme.crl"
    ca_file.write_bytes(certificate_pem(maker.cert))
    crl_file.write_bytes(crl(maker, []).public_bytes(Encoding.DER))
    creds = write_credentials(files, "idevid", cert, key)
    extra = f"[label:same]\nmanufacturer_cas = {ca_file}\nmanufacturer_crls = {crl_file}\n"
    root = tmp_path / "server"
    with daemon(root, extra) as running:
        assert running.notify is not None
        running.notify.wait_for("READY=1")

        def enroll() -> tuple[int, str]:
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(cert.subject)
                .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
            )
            headers = {"Content-Type": "application/pkcs10", "User-Agent": "idevid-test"}
            request = build_request(
                "POST", f"{EST}/same/simpleenroll", csr_body(csr), headers, running.port
            )
            reply = https(
                running.port, request, cafile=root / "state" / "ca" / "ca.pem", client_cert=creds
            )
            return reply.status, reply.body.decode(errors="replace")

        assert enroll()[0] == 200
        crl_file.write_bytes(crl(maker, [cert]).public_bytes(Encoding.PEM))
        running.send(signal.SIGHUP)
        running.wait_for(r"reloaded the configuration from ")
        status, body = enroll()
        assert status == 401 and "revoked by its manufacturer" in body

        # A CRL that no manufacturer CA of the label signed would never be consulted: the
        # reload is refused, naming the key, and the CRL in force stays.
        crl_file.write_bytes(crl(stranger, []).public_bytes(Encoding.DER))
        running.send(signal.SIGHUP)
        [refused] = running.wait_for(r"reload refused")
        assert "[label:same] manufacturer_crls" in refused and "not signed by" in refused
        assert enroll()[0] == 401
