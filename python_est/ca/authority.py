"""`CertificateAuthority`: create or load CA material and issue certificates with it.

An instance is immutable once built, so one CA may serve many worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from python_est import oids
from python_est.ca import material, rules, signer
from python_est.ca.material import CaMaterial
from python_est.ca.rules import SERIAL_BITS, IpAddress, IssuerPrivateKey
from python_est.ca.signer import CaKey, ExternalKey
from python_est.errors import CaError, InvalidCsr
from python_est.keys import KeyType, generate_private_key, weak_key_reason
from python_est.profile import IssuanceProfile


class CertificateAuthority:
    """Issues certificates under `IssuanceProfile` rules with an RSA or EC CA key."""

    def __init__(self, material: CaMaterial) -> None:
        self._material = material

    @classmethod
    def create(
        cls,
        *,
        common_name: str,
        key_type: KeyType,
        validity_days: int,
        issuing_ca: bool = False,
        issuing_key_type: KeyType | None = None,
        organization: str | None = None,
        key: CaKey | None = None,
    ) -> CertificateAuthority:
        """Create a new self-signed root CA, optionally with an issuing CA below it.

        With `issuing_ca` the root is named "<common_name> Root" and the issuing CA takes
        `common_name`, so issued certificates name the same issuer either way. The root key
        is then discarded; call `create_root` and `create_issuing_ca` to keep it.

        Args:
            common_name: CN of the CA that signs issued certificates.
            key_type: key type of the root, and of the issuing CA unless `issuing_key_type`.
            validity_days: lifetime of the CA certificates.
            issuing_ca: also create an intermediate that does the issuing.
            issuing_key_type: key type of the issuing CA.
            organization: optional O attribute of the CA subjects.
            key: the key of the CA that signs issued certificates (a token key), instead of
                a new one of its key type.

        Returns:
            The CA that signs issued certificates.
        """
        return cls(
            material.new_ca(
                common_name=common_name,
                key_type=key_type,
                validity_days=validity_days,
                issuing_ca=issuing_ca,
                issuing_key_type=issuing_key_type,
                organization=organization,
                key=key,
            )
        )

    @classmethod
    def create_root(
        cls,
        *,
        common_name: str,
        key_type: KeyType,
        validity_days: int,
        organization: str | None = None,
        path_length: int | None = 0,
        now: datetime | None = None,
        key: CaKey | None = None,
    ) -> CertificateAuthority:
        """Create a self-signed root CA.

        Args:
            path_length: basicConstraints pathLenConstraint; 0 allows no intermediate below.
            key: the root's key (a token key) instead of a new one of `key_type`.

        Returns:
            The root CA; its chain is its own certificate.
        """
        return cls(
            material.new_root(
                common_name=common_name,
                key_type=key_type,
                validity_days=validity_days,
                organization=organization,
                path_length=path_length,
                now=now,
                key=key,
            )
        )

    def create_issuing_ca(
        self,
        *,
        common_name: str,
        key_type: KeyType,
        validity_days: int,
        organization: str | None = None,
        path_length: int | None = 0,
        now: datetime | None = None,
        key: CaKey | None = None,
    ) -> CertificateAuthority:
        """Create an intermediate CA signed by this CA.

        Args:
            path_length: its pathLenConstraint; 0 (the default) lets it sign end entities only.
            key: its key (a token key) instead of a new one of `key_type`.

        Returns:
            The new CA; its chain is its certificate followed by this CA's chain.

        Raises:
            ValueError: this CA's pathLenConstraint forbids a CA below it.
        """
        return CertificateAuthority(
            material.new_issuing(
                self._material,
                common_name=common_name,
                key_type=key_type,
                validity_days=validity_days,
                organization=organization,
                path_length=path_length,
                now=now,
                key=key,
            )
        )

    @classmethod
    def from_pem(
        cls, cert_pem: bytes, key_pem: bytes, chain_pem: bytes = b"", password: bytes | None = None
    ) -> CertificateAuthority:
        """Load a CA from PEM bytes.

        Args:
            cert_pem: the issuing CA certificate first; further certificates join the chain.
            key_pem: its private key (PKCS#8 or traditional PEM).
            chain_pem: the remaining CA certificates up to and including the root, any order.
            password: the passphrase of an encrypted `key_pem`.

        Returns:
            The loaded CA.

        Raises:
            ValueError: unreadable PEM; a key that does not match, does not decrypt, unsupported or
                weak; a certificate that is not a CA; a chain that does not reach a
                self-signed root.
        """
        return cls(material.from_pem(cert_pem, key_pem, chain_pem, password))

    @classmethod
    def with_external_key(
        cls, cert_pem: bytes, key: ExternalKey, chain_pem: bytes = b""
    ) -> CertificateAuthority:
        """Load a CA whose private key stays on a token.

        Raises:
            ValueError: as `from_pem`; the token key is not the certificate's key.
        """
        return cls(material.with_external_key(cert_pem, key, chain_pem))

    def close(self) -> None:
        """Release a token key's session; a key in memory needs nothing."""
        key = self._material.private_key
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            key.close()

    @property
    def material(self) -> CaMaterial:
        """The certificate, key and chain this CA was built from."""
        return self._material

    @property
    def certificate(self) -> x509.Certificate:
        """The issuing CA certificate."""
        return self._material.certificate

    @property
    def key(self) -> CaKey:
        """The key that signs: in memory, or on a token."""
        return self._material.private_key

    @property
    def private_key(self) -> IssuerPrivateKey:
        """The issuing CA private key, to save it (never log it).

        Raises:
            CaError: the key is on a token, which never lets it out.
        """
        key = self._material.private_key
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CaError(f"the CA key {key.location} stays on its token")
        return key

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The issuing certificate first, then up to the root: what /cacerts returns."""
        return self._material.chain

    @property
    def root(self) -> x509.Certificate:
        """The self-signed root at the end of the chain."""
        return self._material.chain[-1]

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        profile: IssuanceProfile,
        *,
        public_key: CertificatePublicKeyTypes | None = None,
        serial: int | None = None,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """Issue a certificate for `csr` under `profile`.

        Only the subject (with the profile's fixed attributes) and the permitted
        subjectAltNames come from the CSR. Every other requested extension is ignored:
        keyUsage, extendedKeyUsage and basicConstraints come from the profile, and keyUsage
        bits meaningless for the key's algorithm are dropped (keyEncipherment for an EC key).

        Args:
            csr: the request; its signature is the proof of possession of its key.
            profile: validity, key usages and SAN rules.
            public_key: certify this key instead of the CSR's (server-side key generation:
                RFC 7030 §4.4.1 has the CSR's key and signature ignored).
            serial: serial number to use instead of a fresh random one.
            now: the issuance time (default: the current time).

        Returns:
            The signed certificate.

        Raises:
            InvalidCsr: bad signature, weak or unsupported key, or names the profile refuses.
            CaError: the CA cannot sign (expired CA certificate, unusable profile).
        """
        if public_key is None:
            public_key = rules.verified_csr_key(csr)
        reason = weak_key_reason(public_key)
        if reason is not None:
            raise InvalidCsr(reason)
        san = rules.issued_san(rules.permitted_san(csr, profile), profile)
        if len(csr.subject) == 0 and san is None:
            raise InvalidCsr("CSR has neither a subject nor a subjectAltName")
        subject = rules.issued_subject(csr.subject, profile)
        return self._sign(subject, public_key, san, profile, serial, material.utc(now))

    def issue_server_certificate(
        self,
        *,
        common_name: str,
        dns_names: Sequence[str],
        ip_addresses: Sequence[IpAddress],
        key_type: KeyType,
        validity_days: int,
        now: datetime | None = None,
    ) -> tuple[x509.Certificate, IssuerPrivateKey]:
        """Issue a TLS server certificate (EKU serverAuth) for a fresh key.

        keyUsage is digitalSignature, plus keyEncipherment for an RSA key (RSA key transport).
        `validity_days` is the whole span from notBefore to notAfter, backdating included:
        relying parties that cap server certificates (Apple: 825 days) measure that span.

        Returns:
            The certificate and its private key.

        Raises:
            ValueError: neither DNS names nor IP addresses were given.
        """
        if not dns_names and not ip_addresses:
            raise ValueError("a server certificate needs at least one DNS name or IP address")
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(address) for address in ip_addresses]
        profile = IssuanceProfile(
            name="tls-server",
            validity_days=validity_days,
            key_usage=frozenset({"digital_signature", "key_encipherment"}),
            extended_key_usage=(oids.ID_KP_SERVER_AUTH,),
        )
        san = x509.SubjectAlternativeName(names)
        return self._issue_for_new_key(common_name, key_type, profile, san, now, whole_span=True)

    def issue_client_certificate(
        self,
        *,
        common_name: str,
        key_type: KeyType = KeyType.EC_P256,
        validity_days: int = 365,
        extended_key_usage: Sequence[ObjectIdentifier] = (oids.ID_KP_CLIENT_AUTH,),
        dns_names: Sequence[str] = (),
        now: datetime | None = None,
        ocsp_no_check: bool = False,
    ) -> tuple[x509.Certificate, IssuerPrivateKey]:
        """Issue a client certificate (or an RA certificate, with id-kp-cmcRA) for a fresh key.

        `ocsp_no_check` adds id-pkix-ocsp-nocheck (a delegated OCSP signer, RFC 6960 §4.2.2.2.1).

        Returns:
            The certificate and its private key.
        """
        profile = IssuanceProfile(
            name="tls-client",
            validity_days=validity_days,
            key_usage=frozenset({"digital_signature"}),
            extended_key_usage=tuple(extended_key_usage),
            ocsp_no_check=ocsp_no_check,
        )
        san = None
        if dns_names:
            san = x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names])
        return self._issue_for_new_key(common_name, key_type, profile, san, now)

    def _issue_for_new_key(
        self,
        common_name: str,
        key_type: KeyType,
        profile: IssuanceProfile,
        san: x509.SubjectAlternativeName | None,
        now: datetime | None,
        *,
        whole_span: bool = False,
    ) -> tuple[x509.Certificate, IssuerPrivateKey]:
        key = generate_private_key(key_type)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = self._sign(
            subject, key.public_key(), san, profile, None, material.utc(now), whole_span=whole_span
        )
        return cert, key

    def _sign(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        san: x509.ExtensionType | None,
        profile: IssuanceProfile,
        serial: int | None,
        now: datetime,
        *,
        whole_span: bool = False,
    ) -> x509.Certificate:
        if serial is None:
            serial = rules.random_serial()
        elif not 0 < serial < 1 << SERIAL_BITS:
            raise ValueError(f"serial must be positive and below 2**{SERIAL_BITS}")
        not_before, not_after = material.validity(
            self.certificate, profile.validity_days, now, whole_span=whole_span
        )
        builder = (
            material.certificate_builder(
                subject, self.certificate.subject, public_key, not_before, not_after
            )
            .serial_number(serial)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                rules.authority_key_identifier(self.certificate, self.key.public_key()),
                critical=False,
            )
        )
        prescribed = {oid for oid, _, _ in profile.prescribed_extensions}
        key_usage = rules.key_usage(profile.key_usage, public_key)
        if key_usage is not None and ExtensionOID.KEY_USAGE not in prescribed:
            builder = builder.add_extension(key_usage, critical=True)
        if profile.extended_key_usage and ExtensionOID.EXTENDED_KEY_USAGE not in prescribed:
            eku = x509.ExtendedKeyUsage(list(profile.extended_key_usage))
            builder = builder.add_extension(eku, critical=False)
        for oid, critical, value in profile.prescribed_extensions:
            # RFC 9908 §3.2: the value the label prescribes, byte for byte.
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical)
        if san is not None:
            # RFC 5280 §4.2.1.6: with an empty subject the SAN extension MUST be critical.
            critical = len(subject) == 0 or profile.prescribed_san_critical
            builder = builder.add_extension(san, critical=critical)
        cdp = rules.crl_distribution_points(profile.crl_urls)
        if cdp is not None:
            # RFC 5280 §4.2.1.13: the extension SHOULD be non-critical.
            builder = builder.add_extension(cdp, critical=False)
        aia = rules.ocsp_access(profile.ocsp_urls)
        if aia is not None:
            # RFC 5280 §4.2.2.1: the extension MUST be non-critical.
            builder = builder.add_extension(aia, critical=False)
        if profile.ocsp_no_check:
            # RFC 6960 §4.2.2.2.1: the extension's value is NULL, non-critical.
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        try:
            return signer.sign_certificate(builder, self.key)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise CaError("the CA could not sign the certificate") from exc
