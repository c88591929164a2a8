"""Pure codecs for EST bodies: bytes in, values out (RFC 7030, RFC 8951).

Split by concept: `der` (base64 bodies, DER framing), `pkcs` (PKCS#10, certs-only CMS,
challengePassword), `csrattrs` (CSR attributes), `mime` (media types, serverkeygen multipart),
`pkcs12` (PKCS#12 files for the bootstrap page, MAC as costly as the encryption).
"""

from __future__ import annotations

from python_est.wire.csrattrs import (
    CsrAttribute,
    CsrAttrItem,
    CsrAttrs,
    CsrAttrValue,
    decode_csrattrs,
    decode_integer,
    encode_csrattrs,
    parse_csrattrs_spec,
    with_challenge_password,
)
from python_est.wire.der import decode_base64_der, encode_base64, one_line_base64
from python_est.wire.mime import (
    encode_serverkeygen,
    one_line_parts,
    parse_media_type,
    parse_multipart,
)
from python_est.wire.pkcs import (
    csr_challenge_password,
    decode_certs_only,
    decode_csr,
    encode_certs_only,
)
from python_est.wire.pkcs12 import PKCS12_ITERATIONS, encode_pkcs12, mac_iterations

__all__ = [
    "PKCS12_ITERATIONS",
    "CsrAttrItem",
    "CsrAttrValue",
    "CsrAttribute",
    "CsrAttrs",
    "csr_challenge_password",
    "decode_base64_der",
    "decode_certs_only",
    "decode_csr",
    "decode_csrattrs",
    "decode_integer",
    "encode_base64",
    "encode_certs_only",
    "encode_csrattrs",
    "encode_pkcs12",
    "encode_serverkeygen",
    "mac_iterations",
    "one_line_base64",
    "one_line_parts",
    "parse_csrattrs_spec",
    "parse_media_type",
    "parse_multipart",
    "with_challenge_password",
]
