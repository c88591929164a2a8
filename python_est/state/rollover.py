"""A generated root's key rollover on disk (`python-est ca rollover`; docs/ca.md).

`begin` writes the old root and key, the new ones, then the link certificates (`links.pem`,
last: its presence marks the rollover) under the CA's `rollover/` folder; from then on the state
loads the new root as the CA that issues, and the old root, its key (for its CRL) and the links
from there, never from ca.pem and ca.key. `finish` keeps a copy of the old root and key under
`retired/gN/`, writes the new root over ca.pem and ca.key, raises the generation, and removes
`links.pem` first, so that a crash at any step leaves a state that loads.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from python_est.ca import (
    CertificateAuthority,
    certificate_pem,
    certificates_pem,
    load_pem_certificates,
    private_key_pem,
)
from python_est.ca.rollover import RootRollover, start_rollover
from python_est.config import Config
from python_est.config.keys import CA_PREFIX
from python_est.config.model import DEFAULT_CA
from python_est.errors import ConfigError, UserStoreError
from python_est.fileio import atomic_write, ensure_private_dir
from python_est.ledger import Ledger
from python_est.state.cafiles import ca_from_pem, read_file
from python_est.statedir import CaFiles, StateDir

_PAGE = 500


@dataclass(frozen=True)
class Finished:
    """What `finish` did: the retired folder and how many valid old certificates were left."""

    retired: str
    outstanding: int


def ca_files(config: Config, name: str) -> CaFiles:
    return StateDir(config.server.state_dir).ca_files(name)


def generation(config: Config, name: str) -> int:
    """The key generation of the root of CA `name` (1 until its first finished rollover)."""
    path = ca_files(config, name).generation
    try:
        return int(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return 1
    except (OSError, ValueError):
        raise ConfigError(
            config.source, "server", "state_dir", f"{path} does not hold a number"
        ) from None


def load_rollover(config: Config, name: str) -> RootRollover | None:
    """The rollover in progress of CA `name`, or None.

    Raises:
        ConfigError: its files are unusable.
    """
    folder = ca_files(config, name).rollover
    if not (folder / "links.pem").exists():
        return None
    where = ("server", "state_dir")
    old = ca_from_pem(
        config,
        None,
        read_file(config, *where, folder / "old.pem"),
        read_file(config, *where, folder / "old.key"),
        b"",
    )
    new = ca_from_pem(
        config,
        None,
        read_file(config, *where, folder / "new.pem"),
        read_file(config, *where, folder / "new.key"),
        b"",
    )
    links = load_pem_certificates(read_file(config, *where, folder / "links.pem"))
    new_with_old = [c for c in links if c.public_key() == new.certificate.public_key()]
    old_with_new = [c for c in links if c.public_key() == old.certificate.public_key()]
    if len(links) != 2 or len(new_with_old) != 1 or len(old_with_new) != 1:
        raise ConfigError(
            config.source, *where, f"{folder / 'links.pem'} does not hold the two link certificates"
        )
    return RootRollover(old, new, new_with_old[0], old_with_new[0])


def past_roots(config: Config, name: str) -> list[x509.Certificate]:
    """The roots of CA `name` that signed before its current one: a rollover's old root and
    every retired root (their certificates stay in the ledger)."""
    if config.ca_config(name).cert_file is not None:
        return []
    files = ca_files(config, name)
    roots = []
    rollover = load_rollover(config, name)
    if rollover is not None:
        roots.append(rollover.old.certificate)
    for path in sorted((files.folder / "retired").glob("g*/ca.pem")):
        roots.extend(load_pem_certificates(read_file(config, "server", "state_dir", path)))
    return roots


def load_rollovers(config: Config) -> dict[str, RootRollover]:
    """The root rollovers in progress, by CA name (generated CAs only)."""
    found = {}
    for name in config.ca_names:
        if config.ca_config(name).cert_file is None:
            rollover = load_rollover(config, name)
            if rollover is not None:
                found[name] = rollover
    return found


def refuse_unsupported(config: Config, name: str) -> None:
    """Refuse, before anything is written, a rollover of a CA whose root python-est does not
    hold as generated files: a rollover writes the old and the new root keys to files.

    Raises:
        ConfigError: the CA's key is on a PKCS#11 token, or the CA is given as files.
    """
    cfg = config.ca_config(name)
    section = "ca" if name == DEFAULT_CA else CA_PREFIX + name
    if cfg.pkcs11 is not None:
        raise ConfigError(
            config.source,
            section,
            "pkcs11_key_label",
            f"the key {cfg.pkcs11.key_label!r} is on a PKCS#11 token, and python-est rolls over "
            "only generated roots with key files; nothing was changed (docs/ca.md, Root rollover)",
        )
    if cfg.cert_file is not None:
        raise ConfigError(
            config.source, section, "cert_file", "a CA given as files is rolled over by its owner"
        )


def begin(config: Config, name: str, current: CertificateAuthority) -> RootRollover:
    """Start the rollover of CA `name`, whose current CA is `current`.

    Raises:
        ConfigError: the CA is given as files or on a token (`refuse_unsupported`), has an
            offline root (issuing_ca), or is in a rollover already.
    """
    cfg = config.ca_config(name)
    section = "ca" if name == DEFAULT_CA else CA_PREFIX + name
    refuse_unsupported(config, name)
    if len(current.chain) != 1:
        raise ConfigError(
            config.source,
            section,
            "issuing_ca",
            "the root's key is offline (issuing_ca = yes); a rollover needs the root's key",
        )
    files = ca_files(config, name)
    if (files.rollover / "links.pem").exists():
        raise ConfigError(
            config.source, section, None, "a rollover is in progress; finish it first (--finish)"
        )
    rollover = start_rollover(current, key_type=cfg.key_type, validity_days=cfg.validity_days)
    folder = files.rollover
    ensure_private_dir(folder)
    atomic_write(folder / "old.pem", certificate_pem(current.certificate), mode=0o644)
    atomic_write(folder / "old.key", private_key_pem(current.private_key))
    atomic_write(folder / "new.pem", certificate_pem(rollover.new.certificate), mode=0o644)
    atomic_write(folder / "new.key", private_key_pem(rollover.new.private_key))
    atomic_write(folder / "links.pem", certificates_pem(rollover.links), mode=0o644)
    return rollover


def finish(config: Config, name: str, ledger: Ledger, *, force: bool) -> Finished:
    """Retire the old root of CA `name`: the new root becomes ca.pem and ca.key.

    Raises:
        ConfigError: the CA cannot be rolled over (`refuse_unsupported`).
        UserStoreError: no rollover is in progress, or certificates of the old root are still
            valid and `force` is false.
    """
    refuse_unsupported(config, name)
    rollover = load_rollover(config, name)
    if rollover is None:
        raise UserStoreError(f"CA {name}: no rollover in progress (start one: ca rollover {name})")
    outstanding = valid_under(ledger, name, rollover.old.certificate)
    if outstanding and not force:
        raise UserStoreError(
            f"CA {name}: {outstanding} certificate(s) issued under the old root are still valid "
            "and unrevoked; renew or revoke them first, or pass --force (their holders then "
            "authenticate nowhere and their revocations are published no more)"
        )
    files = ca_files(config, name)
    number = generation(config, name)
    retired = files.retired(number)
    ensure_private_dir(retired.parent)
    ensure_private_dir(retired)
    atomic_write(retired / "ca.pem", certificate_pem(rollover.old.certificate), mode=0o644)
    atomic_write(retired / "ca.key", private_key_pem(rollover.old.private_key))
    atomic_write(files.key, private_key_pem(rollover.new.private_key))
    atomic_write(files.cert, certificate_pem(rollover.new.certificate), mode=0o644)
    atomic_write(files.generation, f"{number + 1}\n".encode("ascii"), mode=0o644)
    # The marker first: from here on the state loads ca.pem and ca.key (the new root).
    (files.rollover / "links.pem").unlink()
    shutil.rmtree(files.rollover)
    return Finished(str(retired), outstanding)


def valid_under(ledger: Ledger, name: str, root: x509.Certificate) -> int:
    """How many unrevoked, unexpired certificates of CA `name` the key of `root` signed."""
    now = datetime.now(timezone.utc)
    count, offset = 0, 0
    while True:
        page = ledger.list_certificates(limit=_PAGE, offset=offset, revoked=False, ca=name)
        for entry in page:
            if entry.not_after <= now:
                continue
            cert = x509.load_pem_x509_certificate(entry.pem.encode("ascii"))
            try:
                cert.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue  # the new key (or an earlier one) signed it
            count += 1
        if len(page) < _PAGE:
            return count
        offset += _PAGE
