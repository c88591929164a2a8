"""`python-est init`: create the CA, the server certificate, the ledger and the user store."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from cryptography import x509

from python_est.ca import CertificateAuthority
from python_est.config import Config
from python_est.keys import KeyType
from python_est.state import create_ca, has_ca_or_server_certificate, open_state
from python_est.state.guards import orphaned_ledger_problem, token_key_problem
from python_est.state.ocsp import create_ocsp_signer
from python_est.state.server_tls import create_server_credentials
from python_est.state.token_ca import signing_key_type
from python_est.statedir import StateDir


def add_command(sub: Any) -> None:
    """Register `init` on the top-level subparsers `sub`."""
    init = sub.add_parser("init", help="create the CA, server certificate, ledger and user store")
    init.add_argument("--force", action="store_true", help="replace an existing CA and server cert")
    init.add_argument(
        "--server-cert",
        action="store_true",
        help="reissue only the server certificate (after changing [server] server_names)",
    )
    init.add_argument(
        "--ocsp-signer",
        action="store_true",
        help="issue a new delegated OCSP signing certificate (replacing any) for [ocsp] signer",
    )
    init.add_argument(
        "--refuse-existing",
        action="store_true",
        help="fail instead of keeping an existing CA (without --force)",
    )
    init.add_argument(
        "--create-token-key",
        action="store_true",
        help="create the CA key [ca] pkcs11_key_label on the PKCS#11 token (never over one)",
    )
    init.add_argument("--ca-key-type", type=KeyType, choices=list(KeyType), metavar="TYPE")
    init.add_argument("--ca-common-name")
    init.add_argument("--issuing-ca", action="store_true", help="add an issuing CA below the root")
    init.add_argument("--server-key-type", type=KeyType, choices=list(KeyType), metavar="TYPE")
    init.add_argument(
        "--server-name", action="append", default=[], help="extra DNS name or IP (repeatable)"
    )
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace, config: Config) -> int:
    config = _with_init_overrides(args, config)
    state_dir = config.server.state_dir
    if args.server_cert:
        return _reissue_server_certificate(config)
    if args.ocsp_signer:
        return _issue_ocsp_signer(config)
    if args.create_token_key:
        return _create_token_key(config, force=args.force)
    if has_ca_or_server_certificate(config) and args.refuse_existing and not args.force:
        print(
            f"python-est: a CA or server certificate already exists under {state_dir}; "
            "use --force to replace it",
            file=sys.stderr,
        )
        return 1
    if args.force:
        problem = orphaned_ledger_problem(config)
        if problem:
            print(f"python-est: {problem}", file=sys.stderr)
            return 1
        ca = create_ca(config)
        create_server_credentials(config, ca)
        print(f"python-est: new CA and server certificate written under {state_dir}")
    state = open_state(config, create=True)
    for item in state.created:
        print(f"python-est: created {item}")
    signer_path = StateDir(state_dir).ocsp_signer_cert
    if config.ocsp.enabled and config.ocsp.signer == "delegated" and not signer_path.exists():
        _issue_ocsp_signer(config, state.ca)
        state.created.append(str(signer_path))
    if not state.created and not args.force:
        print(f"python-est: state in {state_dir} is complete; nothing to do (--force replaces it)")
    return 0


def _create_token_key(config: Config, *, force: bool) -> int:
    cfg = config.ca
    layout = StateDir(config.server.state_dir)
    if cfg.pkcs11 is None:
        return _refuse(config, "--create-token-key needs the [ca] pkcs11_* keys")
    if cfg.cert_file is not None:
        return _refuse(config, "[ca] cert_file names a CA certificate no new key can match")
    if layout.ca_cert.exists() and not force:
        return _refuse(config, f"a CA certificate exists in {layout.ca_dir}; --force replaces it")
    problem = token_key_problem(config)
    if problem:
        return _refuse(config, problem)
    ca = create_ca(config, new_token_key=True)
    print(
        f"python-est: created the CA key {cfg.pkcs11.key_label!r} on token "
        f"{cfg.pkcs11.token!r} ({signing_key_type(config).value}, not extractable) and its "
        f"CA certificate {cfg.common_name!r} in {layout.ca_dir}"
    )
    if force:
        create_server_credentials(config, ca)
    ca.close()
    with open_state(config, create=True) as state:
        for item in state.created:
            print(f"python-est: created {item}")
    return 0


def _refuse(config: Config, problem: str) -> int:
    print(f"python-est: {config.source}: {problem} (nothing was changed)", file=sys.stderr)
    return 1


def _reissue_server_certificate(config: Config) -> int:
    if config.tls.cert_file is not None:
        print(
            f"python-est: {config.source}: [tls] cert_file names your own server certificate; "
            "replace that file (nothing was changed)",
            file=sys.stderr,
        )
        return 1
    # An existing CA is required (create=False): a new server certificate never comes with a
    # new CA.
    with open_state(config, create=False) as state:
        old = state.server.chain[0]
        new = create_server_credentials(config, state.ca).chain[0]
    san = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = [str(name.value) for name in san]
    print(
        f"python-est: new server certificate (serial {new.serial_number:X}, replaces "
        f"{old.serial_number:X}) for {', '.join(names)} in "
        f"{StateDir(config.server.state_dir).tls_dir}; a running server uses it after "
        "`systemctl reload python-est` (SIGHUP)"
    )
    return 0


def _issue_ocsp_signer(config: Config, ca: CertificateAuthority | None = None) -> int:
    # An existing CA is required: the signer is only meaningful under the CA it answers for.
    if ca is None:
        with open_state(config, create=False) as state:
            ca = state.ca
    path = StateDir(config.server.state_dir).ocsp_signer_cert
    old = path.exists()
    signer = create_ocsp_signer(config, ca).certificate
    print(
        f"python-est: {'replaced the' if old else 'new'} delegated OCSP signer in {path} "
        f"(serial {signer.serial_number:X}, until {signer.not_valid_after_utc.date()}); "
        + (
            "a running server uses it after `systemctl reload python-est` (SIGHUP)"
            if config.ocsp.signer == "delegated"
            else "set [ocsp] signer = delegated to use it"
        )
    )
    return 0


def _with_init_overrides(args: argparse.Namespace, config: Config) -> Config:
    ca = config.ca
    if args.ca_key_type is not None:
        ca = replace(ca, key_type=args.ca_key_type)
    if args.ca_common_name:
        ca = replace(ca, common_name=args.ca_common_name)
    if args.issuing_ca:
        ca = replace(ca, issuing_ca=True)
    tls = config.tls
    if args.server_key_type is not None:
        tls = replace(tls, server_key_type=args.server_key_type)
    server = config.server
    if args.server_name:
        server = replace(server, server_names=(*server.server_names, *args.server_name))
    return replace(config, ca=ca, tls=tls, server=server)
