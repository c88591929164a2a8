"""The start-up banner: URLs, the CA fingerprint and an add-user command that runs as pasted."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from python_est.ca import CertificateAuthority
from python_est.cli.banner import banner_lines, base_url, program_command
from python_est.config import load_config
from python_est.keys import KeyType

PYTHON = sys.executable


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("main.py", f"{PYTHON} {Path('main.py').resolve()}"),
        ("/opt/x/python_est/__main__.py", f"{PYTHON} -m python_est"),
        (".venv/bin/python-est", str(Path(".venv/bin/python-est").resolve())),
        ("/opt/python-est/venv/bin/python-est", "/opt/python-est/venv/bin/python-est"),
        ("surely-not-on-path-est", str(Path("surely-not-on-path-est").resolve())),
    ],
)
def test_the_program_is_spelled_so_that_it_runs_from_any_folder(argv0: str, expected: str) -> None:
    assert program_command(argv0, PYTHON) == expected


def test_a_program_on_path_keeps_its_bare_name() -> None:
    on_path = "sh"
    assert shutil.which(on_path)
    assert program_command(on_path, PYTHON) == "sh"


@pytest.mark.parametrize(
    ("cfg_text", "address", "expected"),
    [
        ("", ("127.0.0.1", 8443), "https://127.0.0.1:8443"),
        ("[server]\nserver_names = est.example.net, 10.0.0.7\n", ("0.0.0.0", 8443),
         "https://est.example.net:8443"),
        ("", ("::1", 9443), "https://[::1]:9443"),
        ("[crl]\nbase_url = https://est.example.org/\n", ("0.0.0.0", 8443),
         "https://est.example.org"),
    ],
)  # fmt: skip
def test_base_url(tmp_path: Path, cfg_text: str, address: tuple[str, int], expected: str) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(cfg_text)
    assert base_url(load_config(cfg), address) == expected


def test_banner_names_the_urls_the_fingerprint_and_a_runnable_command(tmp_path: Path) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[bootstrap]\npath = /enroll-here\n")
    ca = CertificateAuthority.create(
        common_name="Banner CA", key_type=KeyType.EC_P256, validity_days=1
    )
    lines = banner_lines(
        load_config(cfg), cfg, ("127.0.0.1", 8443), ca.root, "/opt/venv/bin/python-est"
    )
    digest = ca.root.fingerprint(hashes.SHA256()).hex(":").upper()
    assert lines == [
        "EST base URL: https://127.0.0.1:8443/.well-known/est",
        "bootstrap page: https://127.0.0.1:8443/enroll-here (browsers must trust the CA)",
        f"CA SHA-256 fingerprint: {digest}",
        f"add a user: /opt/venv/bin/python-est -c {cfg.resolve()} user add NAME",
    ]
    cfg.write_text("[bootstrap]\nenabled = no\n")
    off = banner_lines(load_config(cfg), None, ("127.0.0.1", 8443), ca.root, "python-est")
    assert not any("bootstrap" in line for line in off)
    assert off[-1] == "add a user: python-est user add NAME"


def test_banner_says_where_a_token_ca_key_is(tmp_path: Path) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(
        "[ca]\npkcs11_module = /usr/lib/softhsm/libsofthsm2.so\npkcs11_token = hsm-1\n"
        "pkcs11_key_label = est-ca\npkcs11_pin = env:PIN\n"
    )
    ca = CertificateAuthority.create(common_name="T", key_type=KeyType.EC_P256, validity_days=1)
    lines = banner_lines(load_config(cfg), None, ("127.0.0.1", 8443), ca.root, "python-est")
    assert "CA key: 'est-ca' on PKCS#11 token 'hsm-1'" in lines
    assert not any("PIN" in line for line in lines)
