"""`[ca] pkcs11_*`: all four or none, a PIN source and never the PIN, not with key_file."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_est.config import load_config
from python_est.config.model import Passphrase, Pkcs11Key
from python_est.errors import ConfigError

FULL = {
    "pkcs11_module": "lib/softhsm2.so",
    "pkcs11_token": "python-est",
    "pkcs11_key_label": "ca-key",
    "pkcs11_pin": "env:TOKEN_PIN",
}


def load(tmp_path: Path, keys: dict[str, str]) -> Pkcs11Key | None:
    text = "[ca]\n" + "".join(f"{name} = {value}\n" for name, value in keys.items())
    path = tmp_path / "est.cfg"
    path.write_text(text)
    return load_config(path).ca.pkcs11


def error(tmp_path: Path, keys: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, keys)
    assert caught.value.file == str(tmp_path / "est.cfg")
    assert caught.value.section == "ca"
    return caught.value


def test_all_four_keys_name_a_token_key_with_the_pin_source(tmp_path: Path) -> None:
    key = load(tmp_path, FULL)
    assert key == Pkcs11Key(
        module=tmp_path / "lib" / "softhsm2.so",
        token="python-est",
        key_label="ca-key",
        pin=Passphrase("env", "TOKEN_PIN", "ca", "pkcs11_pin"),
    )


def test_none_of_them_means_no_token(tmp_path: Path) -> None:
    assert load(tmp_path, {}) is None
    assert load(tmp_path, dict.fromkeys(FULL, "")) is None


@pytest.mark.parametrize("missing", sorted(FULL))
def test_a_missing_one_is_named(tmp_path: Path, missing: str) -> None:
    keys = {name: value for name, value in FULL.items() if name != missing}
    found = error(tmp_path, keys)
    assert found.key == missing
    assert "needs all of" in found.problem


@pytest.mark.parametrize("pin", ["1234", "pass:1234", "file:", "env:a/b"])
def test_the_pin_itself_is_refused(tmp_path: Path, pin: str) -> None:
    found = error(tmp_path, {**FULL, "pkcs11_pin": pin})
    assert found.key == "pkcs11_pin"
    assert "1234" not in str(found)  # a PIN written in the file is not echoed


def test_a_key_file_and_a_token_key_are_exclusive(tmp_path: Path) -> None:
    keys = {**FULL, "cert_file": "ca.pem", "key_file": "ca.key"}
    found = error(tmp_path, keys)
    assert found.key == "key_file"


def test_a_cert_file_goes_with_the_token_key(tmp_path: Path) -> None:
    path = tmp_path / "est.cfg"
    path.write_text("[ca]\ncert_file = ca.pem\n" + "".join(f"{k} = {v}\n" for k, v in FULL.items()))
    ca = load_config(path).ca
    assert ca.cert_file == tmp_path / "ca.pem" and ca.key_file is None
    assert ca.pkcs11 is not None
