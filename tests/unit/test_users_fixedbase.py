"""The fixed-base verifier exponentiation equals tlslite's `powMod` (issue 20, item 4)."""

from __future__ import annotations

import secrets

import pytest
from tlslite.utils.cryptomath import powMod

from python_est.users import fixedbase
from python_est.users.srp import GROUPS, compute_verifier


@pytest.mark.parametrize("bits", sorted(GROUPS))
def test_every_group_gives_powmod_s_value(bits: int) -> None:
    n, g = GROUPS[bits]
    edges = [0, 1, 2, 255, 256, (1 << 160) - 1, 1 << 159, int("01" * 20, 16)]
    for x in edges + [secrets.randbits(160) for _ in range(20)]:
        assert fixedbase.fixed_base_pow(g, x, n) == int(powMod(g, x, n))


def test_exponents_beyond_sha1_and_no_gmpy2_use_powmod(monkeypatch: pytest.MonkeyPatch) -> None:
    n, g = GROUPS[2048]
    big = (1 << 200) + 12345
    assert fixedbase.fixed_base_pow(g, big, n) == int(powMod(g, big, n))
    monkeypatch.setattr(fixedbase, "mpz", None)
    x = secrets.randbits(160)
    assert fixedbase.fixed_base_pow(g, x, n) == int(powMod(g, x, n))


def test_a_verifier_is_the_rfc_5054_one() -> None:
    # RFC 5054 Appendix B: user "alice", password "password123", this salt, the 1024-bit group.
    salt = bytes.fromhex("BEB25379D1A8581EB5A727673A2441EE")
    expected = int(
        "7E273DE8696FFC4F4E337D05B4B375BEB0DDE1569E8FA00A9886D812"
        "9BADA1F1822223CA1A605B530E379BA4729FDC59F105B4787E5186F5"
        "C671085A1447B52A48CF1970B4FB6F8400BBF4CEBFBB168152E08AB5"
        "EA53D15C1AFF87B2B9DA6E04E058AD51CC72BFC9033B564E26480D78"
        "E955A5E29E7AB245DB2BE315E2099AFB",
        16,
    )
    assert compute_verifier(1024, salt, b"alice", b"password123") == expected
