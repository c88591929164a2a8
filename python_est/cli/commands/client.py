"""`python-est client ...`: the EST client on the command line (`python_est.client` does the work).

Exit status: 0 success, 1 failure, 2 usage, 75 (EX_TEMPFAIL) the request still awaits approval.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from python_est.ca import certificates_pem
from python_est.cli.clientargs import (
    credentials_from,
    est_client,
    file_stem,
    key_opener,
    refuse_overwrite,
    require_name,
    save_certificate,
)
from python_est.client import (
    ClientError,
    ClientKey,
    Credentials,
    EnrollmentPending,
    EstClient,
    build_csr,
    fingerprint,
    is_self_signed,
    load_certificates,
    load_csr,
    load_private_key,
    new_key,
    normalize_fingerprint,
    parse_key_type,
    renewal_csr,
    write_certificates,
    write_private_key,
)
from python_est.client.template import (
    find_template,
    parse_subject_value,
    template_csr,
    template_key_type,
    template_renewal_csr,
)
from python_est.config import Config
from python_est.keys import KeyType
from python_est.wire.keyrequest import with_key_protection

EX_TEMPFAIL = 75

Run = Callable[[argparse.Namespace], int]


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `client cacerts|csrattrs|enroll|reenroll|serverkeygen` under `sub`."""
    client = sub.add_parser("client", help="EST client: fetch CA certificates, enroll, renew")
    commands = client.add_subparsers(title="client commands", metavar="OPERATION", required=True)

    server = argparse.ArgumentParser(add_help=False)
    group = server.add_argument_group("server")
    group.add_argument("--server", default="127.0.0.1", help="host name or IP (default 127.0.0.1)")
    group.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    group.add_argument("--label", default="", help="CA label (default: none)")
    group.add_argument("--cacert", type=Path, help="trust anchors (PEM) for the server certificate")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per connection")

    auth = argparse.ArgumentParser(add_help=False)
    group = auth.add_argument_group("authentication")
    group.add_argument("--user", help="user name (HTTP Basic, or TLS-SRP with --srp)")
    group.add_argument("--password", help="password (prefer --password-file or the prompt)")
    group.add_argument("--password-file", type=Path, help="read the password from this file")
    group.add_argument("--srp", action="store_true", help="authenticate by TLS-SRP, not Basic")
    group.add_argument("--cert", type=Path, help="client certificate (PEM)")
    group.add_argument("--key", type=Path, help="private key of --cert (PEM)")

    subject = argparse.ArgumentParser(add_help=False)
    group = subject.add_argument_group("subject")
    group.add_argument("--common-name", help="subject CN of the new certificate")
    group.add_argument("--dns", action="append", default=[], help="DNS subjectAltName (repeat)")
    group.add_argument("--ip", action="append", default=[], help="IP subjectAltName (repeat)")

    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument(
        "--max-wait",
        type=float,
        default=60.0,
        help="seconds to keep retrying while the request awaits approval (default 60)",
    )

    cmd = commands.add_parser(
        "cacerts", parents=[server], help="fetch the CA certificates (/cacerts)"
    )
    cmd.add_argument("--out", type=Path, help="write them here (PEM); default: standard output")
    cmd.add_argument(
        "--accept-fingerprint",
        metavar="HEX",
        help="without --cacert: store the certificates only if a root has this SHA-256 "
        "fingerprint (RFC 7030 §4.1.1 bootstrap)",
    )
    cmd.set_defaults(func=_command(_cacerts))

    cmd = commands.add_parser("csrattrs", parents=[server], help="show the CSR attributes")
    cmd.set_defaults(func=_command(_csrattrs))

    cmd = commands.add_parser(
        "enroll", parents=[server, auth, subject, wait], help="get a certificate (/simpleenroll)"
    )
    cmd.add_argument("--csr", type=Path, help="send this CSR (PEM or DER) instead of making one")
    cmd.add_argument(
        "--private-key",
        type=Path,
        help="use this existing key (PEM) for the CSR (also --key without --cert)",
    )
    cmd.add_argument("--key-type", type=parse_key_type, default=None, help=_KEY_HELP)
    cmd.add_argument("--key-out", type=Path, help="where to write a new key (default CN.key)")
    cmd.add_argument("--cert-out", type=Path, help="where to write the certificate (CN.pem)")
    cmd.add_argument("--force", action="store_true", help=_FORCE_HELP)
    cmd.add_argument(
        "--subject-value",
        action="append",
        default=[],
        metavar="TYPE=VALUE",
        help="a subject attribute the CA's CSR template (RFC 9908) leaves to the client (repeat)",
    )
    cmd.add_argument("--ignore-csrattrs", action="store_true", help=_IGNORE_HELP)
    cmd.set_defaults(func=_command(_enroll))

    cmd = commands.add_parser(
        "reenroll",
        parents=[server, auth, wait],
        help="renew the certificate given by --cert/--key (/simplereenroll)",
    )
    cmd.add_argument("--rekey", action="store_true", help="use a new key (default: keep the key)")
    cmd.add_argument("--key-type", type=parse_key_type, default=KeyType.EC_P256, help=_KEY_HELP)
    cmd.add_argument("--key-out", type=Path, help="where to write the new key (default --key)")
    cmd.add_argument("--cert-out", type=Path, help="where to write the certificate (--cert)")
    cmd.add_argument("--ignore-csrattrs", action="store_true", help=_IGNORE_HELP)
    cmd.set_defaults(func=_command(_reenroll))

    cmd = commands.add_parser(
        "serverkeygen",
        parents=[server, auth, subject, wait],
        help="get a key generated by the server and its certificate (/serverkeygen)",
    )
    cmd.add_argument("--key-out", type=Path, help="where to write the key (default CN.key)")
    cmd.add_argument("--cert-out", type=Path, help="where to write the certificate (CN.pem)")
    cmd.add_argument("--force", action="store_true", help=_FORCE_HELP)
    protect = cmd.add_mutually_exclusive_group()
    protect.add_argument(
        "--encrypt-to",
        type=Path,
        metavar="CERT",
        help="ask for the key encrypted to this certificate (RFC 7030 §4.4.1.2): the TLS "
        "client certificate --cert, or one this user obtained earlier on the label",
    )
    protect.add_argument(
        "--kek",
        metavar="ID",
        help="ask for the key encrypted under the key-encryption key ID (§4.4.1.1); "
        "its value (hex) comes from --kek-file",
    )
    cmd.add_argument("--encrypt-key", type=Path, help="private key of --encrypt-to (default --key)")
    cmd.add_argument("--kek-file", type=Path, help="file holding the KEK named by --kek (hex)")
    cmd.set_defaults(func=_command(_serverkeygen))


_KEY_HELP = "rsa, ec, or rsa-2048|rsa-3072|rsa-4096|ec-p256|ec-p384 (default ec = ec-p256)"
_IGNORE_HELP = "build the CSR without the CA's CSR template (RFC 9908) from /csrattrs"
_FORCE_HELP = (
    "replace existing key and certificate files (default: refuse before contacting the server)"
)


def _command(run: Run) -> Callable[[argparse.Namespace, Config], int]:
    """Adapt a client command to the CLI's `(args, config)` signature; map client errors."""

    def command(args: argparse.Namespace, config: Config) -> int:
        try:
            return run(args)
        except EnrollmentPending as exc:
            print(f"python-est client: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
        except (ClientError, ValueError, OSError) as exc:
            print(f"python-est client: {exc}", file=sys.stderr)
            return 1

    return command


# --- commands -------------------------------------------------------------------------------


def _cacerts(args: argparse.Namespace) -> int:
    bootstrap = args.cacert is None
    client = est_client(args, Credentials(), verify=not bootstrap)
    certs = client.cacerts()
    for cert in certs:
        kind = "root" if is_self_signed(cert) else "CA"
        print(f"{kind}: {cert.subject.rfc4514_string()}", file=sys.stderr)
        print(f"  SHA-256 fingerprint: {fingerprint(cert)}", file=sys.stderr)
    if bootstrap:
        # RFC 7030 §4.1.1: certificates fetched without authenticating the server are trusted
        # only after the user has compared a fingerprint obtained out of band.
        if args.accept_fingerprint is None:
            print(
                "python-est client: the server was not authenticated (no --cacert); compare the "
                "root fingerprint above with the one from your administrator, then run again "
                "with --accept-fingerprint HEX. Nothing was stored.",
                file=sys.stderr,
            )
            return 1
        wanted = normalize_fingerprint(args.accept_fingerprint)
        roots = [c for c in certs if is_self_signed(c)]
        if not any(normalize_fingerprint(fingerprint(c)) == wanted for c in roots):
            print(
                "python-est client: no root certificate has that fingerprint; nothing stored",
                file=sys.stderr,
            )
            return 1
    if args.out is not None:
        write_certificates(args.out, certs)
        print(f"wrote {len(certs)} certificate(s) to {args.out}")
    else:
        sys.stdout.write(certificates_pem(certs).decode("ascii"))
    return 0


def _csrattrs(args: argparse.Namespace) -> int:
    attrs = est_client(args, Credentials()).csrattrs()
    if not attrs:
        print("no CSR attributes requested")
    for item in attrs:
        if isinstance(item, str):
            print(item)
        else:
            values = ", ".join(v if isinstance(v, str) else v.hex() for v in item.values)
            print(f"{item.oid}: {values}")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    if args.key is not None and args.cert is None:
        # `--key K` alone (no certificate to authenticate with) means: reuse K for the CSR.
        args.private_key, args.key = args.private_key or args.key, None
    client = est_client(args, credentials_from(args))
    key: ClientKey | None = None
    if args.csr is not None:
        csr = load_csr(args.csr)
        stem = file_stem(csr.subject)
    else:
        name = require_name(args)
        stem = file_stem(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
    new_key_out = (args.key_out or Path(f"{stem}.key")) if args.private_key is None else None
    cert_out = args.cert_out or Path(f"{stem}.pem")
    if args.csr is None:
        refuse_overwrite(args, new_key_out, cert_out)
        key, csr = _enroll_csr(args, client, name)
    else:
        refuse_overwrite(args, None, cert_out)
    try:
        cert = client.simpleenroll(csr, max_wait=args.max_wait)
    except EnrollmentPending:
        if key is not None and new_key_out is not None:
            # RFC 7030 §4.2.3: the retry must send the same request, so it needs this key.
            write_private_key(new_key_out, key)
            print(f"wrote private key to {new_key_out}; retry with --key {new_key_out}")
        raise
    # Only now, after success: a wrong password, a lockout or a server that is down leaves
    # every existing file as it was.
    if key is not None and new_key_out is not None:
        write_private_key(new_key_out, key)
        print(f"wrote private key to {new_key_out}")
    return save_certificate(cert, cert_out)


def _enroll_csr(
    args: argparse.Namespace, client: EstClient, name: str
) -> tuple[ClientKey, x509.CertificateSigningRequest]:
    # RFC 9908 §4: a client that understands the CA's CSR template uses it (unless told not to).
    template = None if args.ignore_csrattrs else find_template(client.csrattrs())
    if args.private_key:
        key = load_private_key(args.private_key)
    else:
        wanted = template_key_type(template) if template is not None else None
        key = new_key(args.key_type or wanted or KeyType.EC_P256)
    if template is None:
        return key, build_csr(key, common_name=name, dns_names=args.dns, ip_addresses=args.ip)
    print("following the CA's CSR template (RFC 9908)", file=sys.stderr)
    values = dict(parse_subject_value(text) for text in args.subject_value)
    csr = template_csr(
        key,
        template,
        common_name=name,
        subject_values=values,
        dns_names=args.dns,
        ip_addresses=args.ip,
    )
    return key, csr


def _reenroll(args: argparse.Namespace) -> int:
    if args.cert is None or args.key is None:
        raise ValueError("reenroll needs --cert and --key (the certificate being renewed)")
    client = est_client(args, credentials_from(args))
    current = load_certificates(args.cert)[0]
    key = new_key(args.key_type) if args.rekey else load_private_key(args.key)
    # RFC 9908 §4: the renewal follows the CA's CSR template too, within RFC 7030 §4.2.2.
    template = None if args.ignore_csrattrs else find_template(client.csrattrs())
    if template is None:
        csr = renewal_csr(key, current)
    else:
        csr = template_renewal_csr(key, current, template)
    cert = client.simplereenroll(csr, max_wait=args.max_wait)
    if args.rekey:
        key_out = args.key_out or args.key
        write_private_key(key_out, key)
        print(f"wrote private key to {key_out}")
    return save_certificate(cert, args.cert_out or args.cert)


def _serverkeygen(args: argparse.Namespace) -> int:
    client = est_client(args, credentials_from(args))
    name = require_name(args)
    # §4.4.1: the server ignores this key; the CSR only carries the requested names.
    csr_key = new_key(KeyType.EC_P256)
    csr = build_csr(csr_key, common_name=name, dns_names=args.dns, ip_addresses=args.ip)
    stem = file_stem(csr.subject)
    key_out = args.key_out or Path(f"{stem}.key")
    cert_out = args.cert_out or Path(f"{stem}.pem")
    refuse_overwrite(args, key_out, cert_out)
    opener = key_opener(args)
    if opener is not None:
        csr = with_key_protection(csr, csr_key, opener.protection)
    result = client.serverkeygen(csr, max_wait=args.max_wait, opener=opener)
    write_private_key(key_out, result.private_key)
    print(f"wrote private key to {key_out}")
    return save_certificate(result.certificate, cert_out)
