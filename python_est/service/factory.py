"""Factory (IDevID) certificates in the enrollment path (issue 18 item 3; `policy.idevid`).

`service.auth.scoped` has already refused a factory certificate on any operation but
/simpleenroll and on any label not trusting its manufacturer. What remains is the subject it
may obtain, by the label's `idevid_subject` (`policy.factory`). With `registration` the device
is the registration whose name is the certificate's serialNumber attribute: unused, unexpired,
on this label; `DeviceGate.bind` then requires the CSR's exact registered names and the
issuance uses the registration up, as a code login's would.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509

from python_est.config import LabelConfig
from python_est.devices import DeviceRegistry, Registration
from python_est.errors import Forbidden
from python_est.policy.factory import factory_refusal, factory_serial
from python_est.policy.subject import quote


def authorize_factory(
    csr: x509.CertificateSigningRequest,
    cert: x509.Certificate,
    label: LabelConfig,
    registry: DeviceRegistry | None,
    now: datetime,
) -> Registration | None:
    """The registration this enrollment uses (`registration` rule), else None.

    Raises:
        Forbidden: the CSR asks for names the factory certificate does not map to, or no
            usable registration matches the certificate.
        InvalidCsr: the CSR's extensions cannot be read.
    """
    if label.idevid_subject != "registration":
        refusal = factory_refusal(csr, cert, label.idevid_subject, label.idevid_template)
        if refusal is not None:
            raise Forbidden(refusal)
        return None
    serial = factory_serial(cert)
    if serial is None:
        raise Forbidden("the factory certificate has no single serialNumber attribute")
    registration = None if registry is None else registry.get(label.name, serial)
    if registration is None:
        raise Forbidden(f"no device is registered as {quote(serial)} on this CA label")
    if not registration.usable(now):
        raise Forbidden(f"the registration of device {quote(serial)} was used already or expired")
    return registration
