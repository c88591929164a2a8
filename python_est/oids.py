"""Every OID the project names, in one place."""

from __future__ import annotations

from cryptography.x509.oid import ObjectIdentifier

# PKCS#9 / RFC 2985
CHALLENGE_PASSWORD = ObjectIdentifier("1.2.840.113549.1.9.7")
EXTENSION_REQUEST = ObjectIdentifier("1.2.840.113549.1.9.14")
EMAIL_ADDRESS = ObjectIdentifier("1.2.840.113549.1.9.1")

# CMS content type (RFC 5652)
ID_SIGNED_DATA = ObjectIdentifier("1.2.840.113549.1.7.2")

# Extended key usages
ID_KP_SERVER_AUTH = ObjectIdentifier("1.3.6.1.5.5.7.3.1")
ID_KP_CLIENT_AUTH = ObjectIdentifier("1.3.6.1.5.5.7.3.2")
ID_KP_CMC_RA = ObjectIdentifier("1.3.6.1.5.5.7.3.28")  # RFC 6402: registration authority

# RFC 7030 §4.4.1 key-protection attributes
DECRYPT_KEY_IDENTIFIER = ObjectIdentifier("1.2.840.113549.1.9.16.2.37")
ASYMMETRIC_DECRYPT_KEY_IDENTIFIER = ObjectIdentifier("1.2.840.113549.1.9.16.2.54")

# Key algorithms and curves (for CsrAttrs)
ID_EC_PUBLIC_KEY = ObjectIdentifier("1.2.840.10045.2.1")
RSA_ENCRYPTION = ObjectIdentifier("1.2.840.113549.1.1.1")
SECP256R1 = ObjectIdentifier("1.2.840.10045.3.1.7")
SECP384R1 = ObjectIdentifier("1.3.132.0.34")
ECDSA_WITH_SHA256 = ObjectIdentifier("1.2.840.10045.4.3.2")
ECDSA_WITH_SHA384 = ObjectIdentifier("1.2.840.10045.4.3.3")
SHA256_WITH_RSA = ObjectIdentifier("1.2.840.113549.1.1.11")
MAC_ADDRESS = ObjectIdentifier("1.3.6.1.1.1.1.22")

# Friendly names accepted in config for CsrAttrs entries.
NAMED_OIDS: dict[str, ObjectIdentifier] = {
    "challengePassword": CHALLENGE_PASSWORD,
    "extensionRequest": EXTENSION_REQUEST,
    "emailAddress": EMAIL_ADDRESS,
    "macAddress": MAC_ADDRESS,
    "id-ecPublicKey": ID_EC_PUBLIC_KEY,
    "rsaEncryption": RSA_ENCRYPTION,
    "secp256r1": SECP256R1,
    "secp384r1": SECP384R1,
    "ecdsa-with-SHA256": ECDSA_WITH_SHA256,
    "ecdsa-with-SHA384": ECDSA_WITH_SHA384,
    "sha256WithRSAEncryption": SHA256_WITH_RSA,
}

# RFC 9908 §3.4 and IANA's S/MIME attributes registry: the CSR template attributes.
CERTIFICATION_REQUEST_INFO_TEMPLATE = ObjectIdentifier("1.2.840.113549.1.9.16.2.61")
EXTENSION_REQ_TEMPLATE = ObjectIdentifier("1.2.840.113549.1.9.16.2.62")
