"""Verifier files made by the `openssl srp` CLI (libest's format) import and check passwords."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from python_est.users import GROUPS, UserStore
from tests.conftest import require_tool

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def openssl() -> str:
    return require_tool("openssl")


def _srp(openssl: str, vfile: Path, *args: str) -> None:
    subprocess.run(
        [openssl, "srp", "-srpvfile", str(vfile), *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_openssl_made_verifiers_check_passwords(openssl: str, tmp_path: Path, bits: int) -> None:
    vfile = tmp_path / "srpvfile.txt"
    vfile.touch()  # `openssl srp` wants an existing (possibly empty) index file
    _srp(openssl, vfile, "-add", "-gn", str(bits), "-passout", f"pass:pw-{bits}", "device1")
    _srp(openssl, vfile, "-add", "-gn", str(bits), "-passout", "pass:gone", "device2")
    _srp(openssl, vfile, "-delete", "device2")
    store = UserStore.create(tmp_path / "users.srp")

    assert store.import_openssl_srpvfile(vfile) == ["device1"]

    assert store.check_password("device1", f"pw-{bits}")
    assert not store.check_password("device1", "pw-wrong")
    assert not store.exists("device2")  # revoked lines are skipped
    assert store.srp_verifiers()[b"device1"][:2] == GROUPS[bits]
    assert store.weak_users() == (["device1"] if bits < 2048 else [])


SRP_B64 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz./"


def _srp_b64_number(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + SRP_B64.index(ch)
    return value


def test_salt_with_a_leading_zero_byte(openssl: str, tmp_path: Path) -> None:
    # OpenSSL writes all 20 salt bytes but hashes the salt as a BIGNUM, without leading zero
    # bytes. Add users until one salt starts with a zero byte (1 in 256) and check it imports.
    vfile = tmp_path / "srpvfile.txt"
    vfile.touch()
    for i in range(3000):
        _srp(openssl, vfile, "-add", "-gn", "1024", "-passout", f"pass:pw-{i}", f"user{i}")
        salt = vfile.read_text().splitlines()[-1].split("\t")[2]
        if _srp_b64_number(salt) < 2 ** (19 * 8):
            break
    else:
        pytest.fail("no salt with a leading zero byte in 3000 tries")
    store = UserStore.create(tmp_path / "users.srp")
    assert len(store.import_openssl_srpvfile(vfile)) == i + 1
    assert len(store.srp_verifiers()[f"user{i}".encode()][2]) < 20
    assert store.check_password(f"user{i}", f"pw-{i}")
    assert store.check_password("user0", "pw-0")
    assert not store.check_password(f"user{i}", "pw-0")
