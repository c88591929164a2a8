"""OpenSSL ECDHE agrees with tlslite's own ECDH code, and refuses what tlslite refuses."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tlslite.constants import CipherSuite, ECPointFormat, GroupName, SignatureScheme
from tlslite.errors import TLSDecodeError, TLSIllegalParameterException, TLSInsufficientSecurity
from tlslite.extensions import ECPointFormatsExtension, SupportedGroupsExtension
from tlslite.keyexchange import (
    DHE_RSAKeyExchange,
    ECDHE_RSAKeyExchange,
    ECDHKeyExchange,
    KeyExchange,
)
from tlslite.messages import ClientHello, ServerHello

from python_est.tls.fastkex import (
    FastEcdh,
    FastEcdheKeyExchange,
    fast_kex,
    faster_key_exchange,
)
from python_est.tls.fastkeys import tlslite_private_key

TLS12 = (3, 3)
GROUPS = [GroupName.x25519, GroupName.secp256r1, GroupName.secp384r1, GroupName.secp521r1]
BOTH_FORMATS = {"uncompressed", "compressed"}


@pytest.mark.parametrize("group", GROUPS, ids=GroupName.toRepr)
def test_shared_secret_matches_tlslite(group: int) -> None:
    fast, python = FastEcdh(group, TLS12), ECDHKeyExchange(group, TLS12)
    ours, theirs = fast.get_random_private_key(), python.get_random_private_key()
    our_share = fast.calc_public_value(ours)
    their_share = python.calc_public_value(theirs)
    assert isinstance(our_share, bytearray) and len(our_share) == len(their_share)
    secret = fast.calc_shared_key(ours, their_share)
    assert secret == python.calc_shared_key(theirs, our_share)


@pytest.mark.parametrize("group", GROUPS[1:], ids=GroupName.toRepr)
def test_compressed_points_when_negotiated(group: int) -> None:
    fast, python = FastEcdh(group, TLS12), ECDHKeyExchange(group, TLS12)
    ours, theirs = fast.get_random_private_key(), python.get_random_private_key()
    our_share = fast.calc_public_value(ours, "compressed")
    their_share = python.calc_public_value(theirs, "compressed")
    assert our_share[0] in (2, 3) and their_share[0] in (2, 3)
    assert fast.calc_shared_key(ours, their_share, BOTH_FORMATS) == python.calc_shared_key(
        theirs, our_share, BOTH_FORMATS
    )
    # A compressed point where only the uncompressed form was agreed is refused, as tlslite does.
    with pytest.raises(TLSIllegalParameterException):
        python.calc_shared_key(theirs, our_share, {"uncompressed"})
    with pytest.raises(TLSIllegalParameterException):
        fast.calc_shared_key(ours, their_share, {"uncompressed"})


@pytest.mark.parametrize(
    ("group", "share"),
    [
        (GroupName.x25519, bytearray(31)),  # wrong length
        (GroupName.x25519, bytearray(32)),  # low-order point: all-zero secret
        (GroupName.secp256r1, bytearray(b"\x04" + bytes(64))),  # not on the curve
        (GroupName.secp256r1, bytearray(b"\x04" + os.urandom(32))),  # truncated
        (GroupName.secp256r1, bytearray()),
        (GroupName.secp384r1, bytearray(b"\x06" + os.urandom(96))),  # hybrid form
    ],
)
def test_invalid_peer_shares_are_illegal_parameters(group: int, share: bytearray) -> None:
    fast = FastEcdh(group, TLS12)
    with pytest.raises(TLSIllegalParameterException):
        fast.calc_shared_key(fast.get_random_private_key(), share)


def test_no_point_format_is_a_decode_error() -> None:
    fast, python = FastEcdh(GroupName.secp256r1, TLS12), ECDHKeyExchange(GroupName.secp256r1, TLS12)
    share = python.calc_public_value(python.get_random_private_key())
    with pytest.raises(TLSDecodeError):
        fast.calc_shared_key(fast.get_random_private_key(), share, set())


def test_groups_without_an_openssl_path() -> None:
    assert fast_kex(GroupName.x448, (3, 4)) is None
    assert isinstance(fast_kex(GroupName.x25519, (3, 4)), FastEcdh)
    with pytest.raises(ValueError, match="no OpenSSL path"):
        FastEcdh(GroupName.x448, TLS12)


# --- the TLS 1.2 ServerKeyExchange / ClientKeyExchange pair -------------------------------------

SUITE = CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
ACCEPTED = [GroupName.x25519, GroupName.x448, GroupName.secp256r1, GroupName.secp384r1]


@pytest.fixture(scope="module")
def server_key() -> Any:
    return tlslite_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def hellos(client_groups: list[int], formats: list[int] | None = None) -> tuple[Any, Any]:
    exts: list[Any] = [SupportedGroupsExtension().create(client_groups)]
    server_exts: list[Any] = []
    if formats is not None:
        exts.append(ECPointFormatsExtension().create(formats))
        server_exts.append(ECPointFormatsExtension().create(formats))
    client = ClientHello().create(
        TLS12, bytearray(os.urandom(32)), bytearray(0), [SUITE], extensions=exts
    )
    server = ServerHello().create(
        TLS12, bytearray(os.urandom(32)), bytearray(32), SUITE, extensions=server_exts
    )
    return client, server


def agree(server_key: Any, client_groups: list[int], formats: list[int] | None = None) -> Any:
    """Run the server exchange (ours) against tlslite's client side; return the SKE."""
    client_hello, server_hello = hellos(client_groups, formats)
    server = faster_key_exchange(
        ECDHE_RSAKeyExchange(SUITE, client_hello, server_hello, server_key, ACCEPTED)
    )
    assert isinstance(server, FastEcdheKeyExchange)
    ske = server.makeServerKeyExchange("rsa_pss_rsae_sha256")
    KeyExchange.verifyServerKeyExchange(
        ske,
        server_key,
        client_hello.random,
        server_hello.random,
        [SignatureScheme.rsa_pss_rsae_sha256],
    )
    client = ECDHE_RSAKeyExchange(SUITE, client_hello, server_hello, None, client_groups)
    client_secret = client.processServerKeyExchange(server_key, ske)
    assert server.processClientKeyExchange(client.makeClientKeyExchange()) == client_secret
    return ske


@pytest.mark.parametrize("group", [GroupName.x25519, GroupName.secp256r1, GroupName.secp384r1])
def test_server_key_exchange_agrees_with_tlslite_client(server_key: Any, group: int) -> None:
    ske = agree(server_key, [group, GroupName.secp256r1])
    assert ske.named_curve == group  # the client's first choice


def test_compressed_point_format_is_used_when_both_agree(server_key: Any) -> None:
    compressed = ECPointFormat.ansiX962_compressed_prime
    ske = agree(server_key, [GroupName.secp256r1], [compressed, ECPointFormat.uncompressed])
    assert ske.ecdh_Ys[0] in (2, 3)


def test_other_groups_fall_back_to_tlslite(server_key: Any) -> None:
    ske = agree(server_key, [GroupName.x448])
    assert ske.named_curve == GroupName.x448


def test_no_mutual_group_is_insufficient_security(server_key: Any) -> None:
    client_hello, server_hello = hellos([GroupName.secp521r1])
    server = faster_key_exchange(
        ECDHE_RSAKeyExchange(SUITE, client_hello, server_hello, server_key, ACCEPTED)
    )
    with pytest.raises(TLSInsufficientSecurity):
        server.makeServerKeyExchange("rsa_pss_rsae_sha256")


def test_ecdsa_server_key_signs_the_exchange() -> None:
    key = tlslite_private_key(ec.generate_private_key(ec.SECP256R1()))
    suite = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    client_hello, server_hello = hellos([GroupName.x25519])
    server = faster_key_exchange(
        ECDHE_RSAKeyExchange(suite, client_hello, server_hello, key, ACCEPTED)
    )
    ske = server.makeServerKeyExchange("ecdsa_secp256r1_sha256")
    KeyExchange.verifyServerKeyExchange(
        ske,
        key,
        client_hello.random,
        server_hello.random,
        [SignatureScheme.ecdsa_secp256r1_sha256],
    )


def test_other_key_exchanges_are_left_to_tlslite(server_key: Any) -> None:
    client_hello, server_hello = hellos([GroupName.ffdhe2048])
    dhe = DHE_RSAKeyExchange(SUITE, client_hello, server_hello, server_key)
    assert faster_key_exchange(dhe) is dhe
