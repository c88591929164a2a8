"""Real tlslite SRP handshakes against the user store's `verifierDB`, over a socket pair."""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
from tlslite import HandshakeSettings, TLSConnection
from tlslite.constants import AlertDescription, CipherSuite
from tlslite.errors import TLSLocalAlert, TLSRemoteAlert
from tlslite.verifierdb import VerifierDB

from python_est.users import UserStore

pytestmark = pytest.mark.integration


def _settings() -> HandshakeSettings:
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)  # SRP has no TLS 1.3 suites
    settings.keyExchangeNames = ["srp_sha"]
    settings.cipherNames = ["aes128"]
    return settings


def _handshake(verifier_db: Mapping[bytes, object], user: str, password: str) -> dict[str, object]:
    """Run one SRP handshake; return the client's and server's outcome."""
    client_sock, server_sock = socket.socketpair()
    for sock in (client_sock, server_sock):
        sock.settimeout(10)
    outcome: dict[str, object] = {}

    def serve() -> None:
        server = TLSConnection(server_sock)
        try:
            server.handshakeServer(verifierDB=verifier_db, settings=_settings())
            outcome["server_user"] = server.session.srpUsername
            outcome["suite"] = server.session.cipherSuite
        except TLSLocalAlert as alert:
            outcome["server_alert"] = alert.description
        finally:
            server_sock.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client = TLSConnection(client_sock)
    try:
        client.handshakeClientSRP(user, password, settings=_settings())
        outcome["client_ok"] = True
    except TLSRemoteAlert as alert:
        outcome["client_alert"] = alert.description
    finally:
        client_sock.close()
        thread.join(timeout=20)
    assert not thread.is_alive()
    return outcome


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> UserStore:
    path: Path = tmp_path_factory.mktemp("srp") / "users.srp"
    users = UserStore.create(path)
    users.add("alice", "correct horse")
    return users


def test_right_password_completes_the_handshake(store: UserStore) -> None:
    outcome = _handshake(store.srp_verifiers(), "alice", "correct horse")
    assert outcome.get("client_ok") is True
    assert outcome["server_user"] == "alice"
    assert outcome["suite"] in CipherSuite.srpAllSuites


def test_wrong_password_fails_with_bad_record_mac(store: UserStore) -> None:
    outcome = _handshake(store.srp_verifiers(), "alice", "wrong horse")
    assert outcome.get("client_alert") == AlertDescription.bad_record_mac
    assert outcome.get("server_alert") == AlertDescription.bad_record_mac


def test_unknown_user_fails_exactly_like_a_wrong_password(store: UserStore) -> None:
    outcome = _handshake(store.srp_verifiers(), "mallory", "correct horse")
    assert outcome.get("client_alert") == AlertDescription.bad_record_mac
    assert outcome.get("server_alert") == AlertDescription.bad_record_mac


def test_plain_verifierdb_gives_unknown_users_away() -> None:
    # The control: tlslite's own VerifierDB answers an unknown name with a distinct alert.
    db = VerifierDB()
    db[b"alice"] = VerifierDB.makeVerifier("alice", "correct horse", 2048)
    outcome = _handshake(db, "mallory", "correct horse")
    assert outcome.get("client_alert") == AlertDescription.unknown_psk_identity


def test_empty_store_still_negotiates_srp(tmp_path: Path) -> None:
    empty = UserStore.create(tmp_path / "empty.srp")
    outcome = _handshake(empty.srp_verifiers(), "alice", "correct horse")
    assert outcome.get("client_alert") == AlertDescription.bad_record_mac
