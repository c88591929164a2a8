"""What the `python-est client` commands take from their arguments: the connection and its
credentials, the key that opens an encrypted server-generated key, and the output files.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from python_est.client import (
    CertificateFiles,
    Credentials,
    EstClient,
    KeyOpener,
    Password,
    Trust,
    load_certificates,
    load_private_key,
    write_certificates,
)
from python_est.keks import check_kek_id, parse_kek


def key_opener(args: argparse.Namespace) -> KeyOpener | None:
    """How to open the encrypted key `--kek` or `--encrypt-to` asks for; None: a plaintext key.

    Raises:
        ValueError: the options do not go together, or a file cannot be used (named).
    """
    if args.kek_file is not None and args.kek is None:
        raise ValueError("--kek-file goes with --kek")
    if args.encrypt_to is None and args.kek is None:
        return None
    if args.cacert is None:
        raise ValueError("an encrypted key needs --cacert to verify the server's signature on it")
    trust = load_certificates(args.cacert)
    if args.kek is not None:
        check_kek_id(args.kek)
        if args.kek_file is None:
            raise ValueError("--kek needs --kek-file with the key-encryption key (hex)")
        try:
            kek = parse_kek(args.kek_file.read_bytes())
        except ValueError as exc:
            raise ValueError(f"{args.kek_file}: {exc}") from None
        return KeyOpener.to_kek(args.kek, kek, trust)
    recipient = load_certificates(args.encrypt_to)[0]
    key_file = args.encrypt_key
    if key_file is None and args.cert is not None and load_certificates(args.cert)[0] == recipient:
        key_file = args.key
    if key_file is None:
        raise ValueError("--encrypt-to needs --encrypt-key, the private key of that certificate")
    key = load_private_key(key_file)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_file}: only RSA and EC keys can receive an encrypted key")

    try:
        return KeyOpener.to_certificate(recipient, key, trust)
    except ValueError as exc:
        raise ValueError(f"{key_file}: {exc}") from None


def est_client(
    args: argparse.Namespace, credentials: Credentials, *, verify: bool = True
) -> EstClient:
    """The client for `--server`/`--port`/`--label`, trusting `--cacert` (`verify`: check the
    server at all; False only to fetch /cacerts for a bootstrap)."""
    anchors = tuple(load_certificates(args.cacert)) if args.cacert is not None else ()
    return EstClient(
        args.server,
        args.port,
        label=args.label,
        trust=Trust(anchors=anchors, verify=verify),
        credentials=credentials,
        timeout=args.timeout,
    )


def credentials_from(args: argparse.Namespace) -> Credentials:
    """The client certificate and the password (HTTP Basic, or TLS-SRP with `--srp`) to use.

    Raises:
        ValueError: the options do not go together, or no password can be read.
    """
    client_cert = None
    if (args.cert is None) != (args.key is None):
        raise ValueError("--cert and --key go together")
    if args.cert is not None:
        client_cert = CertificateFiles(args.cert, args.key)
    if args.user is None:
        if args.srp:
            raise ValueError("--srp needs --user")
        return Credentials(client_cert=client_cert)
    password = Password(args.user, _password(args))
    if args.srp:
        return Credentials(srp=password, client_cert=client_cert)
    return Credentials(basic=password, client_cert=client_cert)


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if args.password_file is not None:
        return str(args.password_file.read_text(encoding="utf-8").rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise ValueError("no password: give --password-file or run on a terminal")
    return getpass.getpass(f"Password for {args.user}: ")


def refuse_overwrite(args: argparse.Namespace, key_out: Path | None, cert_out: Path) -> None:
    """Stop before contacting the server if a file would be replaced without --force."""
    if args.force:
        return
    if key_out is not None and key_out.exists():
        raise ValueError(
            f"{key_out} exists (the key of an earlier certificate?); nothing was sent. Reuse it "
            f"with --key {key_out}, write the new key elsewhere with --key-out, or replace it "
            "with --force"
        )
    if cert_out.exists():
        raise ValueError(
            f"{cert_out} exists; nothing was sent. Write elsewhere with --cert-out, or replace "
            "it with --force"
        )


def require_name(args: argparse.Namespace) -> str:
    """`--common-name`; ValueError without one."""
    if not args.common_name:
        raise ValueError("--common-name is required")
    return str(args.common_name)


def save_certificate(cert: x509.Certificate, path: Path) -> int:
    """Write `cert` to `path` and say so, with its subject, serial and validity; 0."""
    write_certificates(path, [cert])
    print(f"wrote certificate to {path}")
    print(f"  subject: {cert.subject.rfc4514_string()}")
    print(f"  serial:  {cert.serial_number:X}")
    print(f"  valid:   {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}")
    return 0


def file_stem(subject: x509.Name) -> str:
    """A file name stem from the subject's CN: only [A-Za-z0-9._-], at most 64 characters."""
    names = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    raw = str(names[0].value) if names else ""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._")[:64] or "certificate"
