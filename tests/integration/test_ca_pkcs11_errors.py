"""A CA key on a token set up wrongly: refused at start with one line naming file and key.

Missing module, a file that is no PKCS#11 module, wrong PIN, unknown token, unknown key,
an unsupported or extractable key, a key that is not the CA certificate's; and `init
--create-token-key` never replaces a key. Over TLS: a client certificate from a look-alike CA
(same name, another key) authenticates nobody when the real CA key is on the token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from est_harness import (
    RunningServer,
    build_request,
    csr_body,
    https,
    make_csr,
    running_server,
    write_credentials,
)
from est_harness.config import TEST_CFG, merge_config
from est_harness.process import run_cli
from python_est.ca import CertificateAuthority
from python_est.ca.pkcs11 import open_token_key
from python_est.config import load_config
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.ledger import IssuedCertificate
from python_est.state import open_state
from tests.softhsm_support import SoftToken, new_label, soft_token

pytestmark = pytest.mark.integration


def write(root: Path, *extras: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "est.cfg"
    path.write_text(merge_config(TEST_CFG, *extras))
    return path


def start_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        open_state(load_config(path), create=True)
    return caught.value


@pytest.fixture
def token() -> SoftToken:
    return soft_token()


@pytest.fixture
def existing_key(token: SoftToken) -> Iterator[str]:
    """The label of an EC P-256 CA key made on the token for this test."""
    label = new_label("existing")
    key = open_token_key(
        token.module, token.label, label, token.pin.encode(), create=KeyType.EC_P256
    )
    key.close()
    yield label


def test_a_wrong_pin_names_pkcs11_pin(token: SoftToken, existing_key: str, tmp_path: Path) -> None:
    pin_file = tmp_path / "wrong.pin"
    pin_file.write_text("not-the-pin\n")
    path = write(tmp_path, token.config(existing_key, pin=f"file:{pin_file}"))
    error = start_error(path)
    assert (error.file, error.section, error.key) == (str(path), "ca", "pkcs11_pin")
    assert "PIN" in error.problem and "not-the-pin" not in str(error)


def test_a_pin_that_is_not_text_names_pkcs11_pin(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    pin_file = tmp_path / "binary.pin"
    pin_file.write_bytes(b"\xff\xfe")
    error = start_error(write(tmp_path, token.config(existing_key, pin=f"file:{pin_file}")))
    assert error.key == "pkcs11_pin"
    assert "not UTF-8" in error.problem


def test_a_wrong_pin_is_refused_while_the_process_is_logged_in(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    # Login is per process; a second key opened with another PIN must not ride on it.
    held = open_token_key(token.module, token.label, existing_key, token.pin.encode())
    try:
        path = write(tmp_path, token.config(existing_key, pin="env:PYTHON_EST_TEST_BAD_PIN"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PYTHON_EST_TEST_BAD_PIN", "0000")
            error = start_error(path)
        assert error.key == "pkcs11_pin"
    finally:
        held.close()


def test_an_unset_pin_variable_names_pkcs11_pin(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    path = write(tmp_path, token.config(existing_key, pin="env:PYTHON_EST_TEST_UNSET_PIN"))
    error = start_error(path)
    assert error.key == "pkcs11_pin"
    assert "PYTHON_EST_TEST_UNSET_PIN is not set" in error.problem


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"pkcs11_module": "/nonexistent/libpkcs11.so"}, "pkcs11_module", "does not exist"),
        ({"pkcs11_module": "/bin/sh"}, "pkcs11_module", "not a usable PKCS#11 module"),
        ({"pkcs11_token": "no-such-token"}, "pkcs11_token", "no token labelled 'no-such-token'"),
        ({"pkcs11_key_label": "no-such-key"}, "pkcs11_key_label", "--create-token-key"),
    ],
    ids=["missing-module", "not-a-module", "unknown-token", "unknown-key"],
)
def test_each_wrong_setting_is_named(
    token: SoftToken,
    existing_key: str,
    tmp_path: Path,
    change: dict[str, str],
    key: str,
    words: str,
) -> None:
    extra = "[ca]\n" + "".join(f"{name} = {value}\n" for name, value in change.items())
    path = write(tmp_path, token.config(existing_key), extra)
    error = start_error(path)
    assert (error.file, error.section, error.key) == (str(path), "ca", key)
    assert words in error.problem


def test_the_cli_says_it_in_one_line_and_exits_2(token: SoftToken, tmp_path: Path) -> None:
    path = write(tmp_path, token.config("no-such-key"))
    result = run_cli(path, "init")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "[ca] pkcs11_key_label" in lines[0]
    assert not (tmp_path / "state" / "ca" / "ca.pem").exists()


def test_an_extractable_key_is_refused(token: SoftToken, tmp_path: Path) -> None:
    from pkcs11 import Attribute, MechanismFlag
    from pkcs11 import KeyType as P11KeyType

    label = new_label("extractable")
    _made_with(
        token,
        lambda session: session.generate_keypair(
            P11KeyType.RSA,
            2048,
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            private_template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False},
        ),
    )
    error = start_error(write(tmp_path, token.config(label)))
    assert error.key == "pkcs11_key_label"
    assert "extractable" in error.problem


def test_an_unsupported_key_type_is_refused(token: SoftToken, tmp_path: Path) -> None:
    from pkcs11 import Attribute, MechanismFlag
    from pkcs11 import KeyType as P11KeyType

    label = new_label("dsa")

    def make(session: Any) -> object:
        params = session.generate_domain_parameters(P11KeyType.DSA, 1024)
        return params.generate_keypair(
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            private_template={Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True},
        )

    _made_with(token, make)
    error = start_error(write(tmp_path, token.config(label)))
    assert error.key == "pkcs11_key_label"
    assert "not supported" in error.problem


def test_a_key_that_is_not_the_certificates_is_refused(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    first = write(tmp_path / "first", token.config(existing_key))
    with open_state(load_config(first), create=True) as state:
        ca_pem = tmp_path / "first" / "state" / "ca" / "ca.pem"
        assert state.ca.certificate.public_key() == state.ca.key.public_key()
    other = new_label("other")
    made = run_cli(write(tmp_path / "other", token.config(other)), "init", "--create-token-key")
    assert made.returncode == 0, made.stderr
    swapped = write(tmp_path / "swapped", token.config(other), f"[ca]\ncert_file = {ca_pem}\n")
    error = start_error(swapped)
    assert (error.section, error.key) == ("ca", "cert_file")
    assert "is not the key of the CA certificate" in error.problem


def test_init_never_replaces_a_token_key(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    path = write(tmp_path, token.config(existing_key))
    result = run_cli(path, "init", "--create-token-key")
    assert result.returncode == 2
    assert "[ca] pkcs11_key_label" in result.stderr and "never overwritten" in result.stderr
    assert not (tmp_path / "state" / "ca").exists()
    # Made once; asked again, it refuses without touching the certificate it made.
    fresh = write(tmp_path / "fresh", token.config(new_label("fresh")))
    assert run_cli(fresh, "init", "--create-token-key").returncode == 0
    ca_pem = tmp_path / "fresh" / "state" / "ca" / "ca.pem"
    before = ca_pem.read_bytes()
    again = run_cli(fresh, "init", "--create-token-key")
    assert again.returncode == 1
    assert "--force replaces it" in again.stderr and "nothing was changed" in again.stderr
    assert ca_pem.read_bytes() == before


def test_init_without_token_settings_refuses_to_create_one(tmp_path: Path) -> None:
    result = run_cli(write(tmp_path), "init", "--create-token-key")
    assert result.returncode == 1
    assert "needs the [ca] pkcs11_* keys" in result.stderr
    assert not (tmp_path / "state").exists()


def test_a_look_alike_ca_certificate_authenticates_nobody(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    root = tmp_path / "server"
    extra = token.config(existing_key)
    write(root, extra)
    with running_server(root, extra) as server:
        real = server.state.ca.certificate
        fake = CertificateAuthority.create_root(
            common_name=real.subject.rfc4514_string().removeprefix("CN="),
            key_type=KeyType.EC_P256,
            validity_days=30,
        )
        assert fake.certificate.subject == real.subject
        cert, key = fake.issue_client_certificate(common_name="device-1")
        credentials = write_credentials(tmp_path, "forged", cert, key)
        status = _reenroll_status(server, credentials)
        server.state.ca.close()
    assert status in (401, 403)


def _reenroll_status(server: RunningServer, credentials: tuple[Path, Path]) -> int:
    csr, _ = make_csr("device-1")
    raw = build_request(
        "POST",
        "/.well-known/est/simplereenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10"},
        server.port,
    )
    return https(server.port, raw, cafile=server.ca_file, client_cert=credentials).status


def _made_with(token: SoftToken, make: Callable[[Any], object]) -> None:
    import pkcs11
    from pkcs11 import exceptions

    lib = pkcs11.lib(str(token.module.resolve()))
    handle = lib.get_token(token_label=token.label)
    try:
        session = handle.open(rw=True, user_pin=token.pin)
    except exceptions.UserAlreadyLoggedIn:
        session = handle.open(rw=True)
    with session:
        make(session)


def test_a_new_token_key_never_orphans_issued_certificates(
    token: SoftToken, existing_key: str, tmp_path: Path
) -> None:
    path = write(tmp_path, token.config(existing_key))
    with open_state(load_config(path), create=True) as state:
        cert, _ = state.ca.issue_client_certificate(common_name="issued-before")
        state.ledger.record(
            IssuedCertificate.from_certificate(
                cert, requester="dev1", auth_method="basic", label="", operation="simpleenroll"
            )
        )
    (tmp_path / "state" / "ca" / "ca.pem").unlink()
    moved = write(tmp_path, token.config(new_label("replacement")))
    result = run_cli(moved, "init", "--create-token-key", "--force")
    assert result.returncode == 1
    assert (
        "ledger holds 1 certificate(s)" in result.stderr and "nothing was changed" in result.stderr
    )
    assert not (tmp_path / "state" / "ca" / "ca.pem").exists()


class FlakyModule:
    """A PKCS#11 library whose token lookup fails in general `failures` times first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def get_token(self, *, token_label: str) -> str:
        from pkcs11 import exceptions

        self.calls += 1
        if self.calls <= self.failures:
            raise exceptions.GeneralError()
        return f"token {token_label}"


def test_a_token_lookup_that_fails_in_general_is_retried_then_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SoftHSM fails so when forked workers open its token in the same moment: the worker
    # died and was restarted a second later, under a bare GeneralError.
    from python_est.ca import pkcs11 as token_module

    monkeypatch.setattr(token_module, "_TOKEN_RETRY_PAUSES", (0.0, 0.0, 0.0))
    passing = FlakyModule(failures=2)
    found = token_module._find_token(passing, Path("softhsm.so"), "ca")  # type: ignore[arg-type]
    assert found == "token ca" and passing.calls == 3
    failing = FlakyModule(failures=10)
    with pytest.raises(token_module.TokenError) as refused:
        token_module._find_token(failing, Path("softhsm.so"), "ca")  # type: ignore[arg-type]
    assert failing.calls == 4
    assert "the token 'ca' cannot be read (GeneralError)" in str(refused.value)
