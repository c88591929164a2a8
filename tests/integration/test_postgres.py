"""PostgreSQL storage against a real server: schema, ledger, users, limits, ticket keys, outages.

Each test gets a new database in one throwaway cluster (tests/pg_support.py). Two `Database`
objects on one database stand for two instances of a fleet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from est_harness import (
    TEST_CFG,
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    merge_config,
    srp,
)
from python_est import wire
from python_est.ca import CertificateAuthority
from python_est.cli import main
from python_est.config import load_config
from python_est.errors import ConfigError, TooManyRequests, Unavailable, UserStoreError
from python_est.keys import KeyType
from python_est.ledger import (
    DuplicateSerial,
    IssuedCertificate,
    PendingStateError,
    PendingStatus,
    UnknownSerial,
    serial_hex,
)
from python_est.state import open_state
from python_est.users import UserStore
from tests.pg_support import PgCluster, postgres_cluster

if TYPE_CHECKING:
    from python_est.ledger.postgres import PostgresLedger
    from python_est.pgsql import Cursor, Database

pytestmark = pytest.mark.integration

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with postgres_cluster() as running:
        yield running


@pytest.fixture
def url(cluster: PgCluster) -> str:
    """A new database with the current schema."""
    from python_est.pgsql import SCHEMA_VERSION, Database, upgrade

    address = cluster.create_database()
    db = Database(address, pool_size=1)
    assert upgrade(db) == (0, SCHEMA_VERSION)
    db.close()
    return address


@pytest.fixture
def databases(url: str) -> Iterator[Callable[[], Database]]:
    """Make `Database`s on the test database (each one an instance); all closed afterwards."""
    from python_est.pgsql import Database

    made: list[Database] = []

    def make() -> Database:
        made.append(Database(url, pool_size=4))
        return made[-1]

    yield make
    for db in made:
        db.close()


def ledger_on(db: Database) -> PostgresLedger:
    from python_est.ledger.postgres import PostgresLedger

    return PostgresLedger(db)


CA = CertificateAuthority.create(
    common_name="pg test CA", key_type=KeyType.EC_P256, validity_days=30
)


def issued(cn: str = "device-1") -> IssuedCertificate:
    cert, _ = CA.issue_client_certificate(common_name=cn)
    return IssuedCertificate.from_certificate(
        cert, requester=cn, auth_method="basic", label="", operation="simpleenroll"
    )


def test_upgrade_is_idempotent_and_a_newer_schema_is_refused(
    cluster: PgCluster, tmp_path: Path
) -> None:
    from python_est.pgsql import SCHEMA_VERSION, Database, SchemaTooNew, schema_version, upgrade

    db = Database(cluster.create_database())
    try:
        assert schema_version(db) == 0
        assert upgrade(db) == (0, SCHEMA_VERSION)
        assert upgrade(db) == (SCHEMA_VERSION, SCHEMA_VERSION)
        db.run(lambda c: c.execute("INSERT INTO schema_version (version) VALUES (99)"))
        with pytest.raises(SchemaTooNew):
            upgrade(db)
    finally:
        db.close()


def test_servers_refuse_an_old_schema_until_db_upgrade_runs(
    cluster: PgCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from python_est.pgsql import SCHEMA_VERSION

    address = cluster.create_database()
    cfg = tmp_path / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, f"[ledger]\nurl = {address}\n"))
    with pytest.raises(ConfigError, match=r"schema version 0.*python-est db upgrade"):
        open_state(load_config(cfg))
    assert main(["-c", str(cfg), "db", "status"]) == 1
    assert main(["-c", str(cfg), "db", "upgrade"]) == 0
    assert f"upgraded from schema version 0 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["-c", str(cfg), "db", "status"]) == 0
    assert main(["-c", str(cfg), "db", "upgrade"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    state = open_state(load_config(cfg))
    try:
        assert state.database is not None
        assert type(state.ledger).__name__ == "PostgresLedger"
        assert type(state.users).__name__ == "DatabaseUserStore"
    finally:
        state.ledger.close()


def test_ledger_records_lists_and_revokes(databases: Callable[[], Database]) -> None:
    ledger = ledger_on(databases())
    first, second = issued("a"), issued("b")
    second = replace(second, label="iot", issued_at=first.issued_at + timedelta(seconds=1))
    ledger.record(first)
    ledger.record(second)
    assert ledger.get(first.serial) == first
    assert ledger.count() == 2
    assert [e.serial for e in ledger.list_certificates()] == [second.serial, first.serial]
    assert [e.serial for e in ledger.list_certificates(label="iot")] == [second.serial]
    assert ledger.list_certificates(revoked=True) == []
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    revoked = ledger.revoke(first.serial, "keyCompromise", when=when)
    assert (revoked.revoked_at, revoked.revocation_reason) == (when, "keyCompromise")
    again = ledger.revoke(first.serial, "superseded")
    assert again.revocation_reason == "keyCompromise"  # the first revocation stays
    assert ledger.is_revoked(first.serial) and not ledger.is_revoked(second.serial)
    assert [e.serial for e in ledger.list_certificates(revoked=True, label="")] == [first.serial]
    assert [e.serial for e in ledger.list_certificates(revoked=False)] == [second.serial]
    with pytest.raises(UnknownSerial):
        ledger.revoke(12345, "unspecified")
    assert ledger.integrity_check() == []
    assert [ledger.next_number("crl"), ledger.next_number("crl", minimum=10)] == [1, 10]
    ledger.probe()


def test_the_database_enforces_unique_serials(databases: Callable[[], Database]) -> None:
    a, b = ledger_on(databases()), ledger_on(databases())
    entry = issued("a")
    a.record(entry)
    b.record(entry)  # the same certificate again (a retried COMMIT): already recorded
    clash = replace(issued("b"), serial=entry.serial)
    with pytest.raises(DuplicateSerial):
        b.record(clash)
    assert a.count() == 1 and a.get(entry.serial) == entry


def test_concurrent_records_share_a_transaction_and_a_collision_fails_only_its_own(
    url: str, databases: Callable[[], Database]
) -> None:
    import psycopg

    from python_est.ledger.postgres import PostgresLedger

    # One transaction at a time, so that the queue behind the blocked one is what it carries.
    ledger = PostgresLedger(databases(), in_flight=1)
    old = issued("old")
    ledger.record(old)
    first = issued("first")
    good = [issued(f"good-{i}") for i in range(6)]
    clash = replace(issued("clash"), serial=old.serial)
    results: dict[int, BaseException | None] = {}

    def record(index: int, entry: IssuedCertificate) -> None:
        try:
            ledger.record(entry)
        except BaseException as exc:
            results[index] = exc
        else:
            results[index] = None

    entries = [first, *good, clash]
    threads = [threading.Thread(target=record, args=pair) for pair in enumerate(entries)]
    # Another session locks the table: the first transaction waits inside its INSERT while the
    # other records queue up behind it, then they all go in the second transaction.
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE certificates IN EXCLUSIVE MODE")
        threads[0].start()
        deadline = time.monotonic() + 10
        while not ledger._group._leaders:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        for thread in threads[1:]:
            thread.start()
        while len(ledger._group._queue) < len(entries) - 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    for thread in threads:
        thread.join(timeout=30)
    assert ledger._group.commits == 1 + 2
    assert [results[i] for i in range(len(entries) - 1)] == [None] * (len(entries) - 1)
    assert isinstance(results[len(entries) - 1], DuplicateSerial)
    assert ledger.count() == 1 + 1 + len(good)
    assert ledger.get(old.serial) == old


def test_two_groups_commit_at_once_and_the_rest_queue_behind_them(
    url: str, databases: Callable[[], Database]
) -> None:
    import psycopg

    ledger = ledger_on(databases())  # in_flight = 2, the default
    entries = [issued(f"g-{i}") for i in range(8)]
    results: dict[int, BaseException | None] = {}

    def record(index: int) -> None:
        try:
            ledger.record(entries[index])
        except BaseException as exc:
            results[index] = exc
        else:
            results[index] = None

    threads = [threading.Thread(target=record, args=(i,)) for i in range(len(entries))]
    deadline = time.monotonic() + 10

    def until(condition: Callable[[], bool]) -> None:
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.005)

    # The table locked by another session: both transactions in flight wait inside their INSERT.
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE certificates IN EXCLUSIVE MODE")
        threads[0].start()
        until(lambda: ledger._group._leaders == 1)
        threads[1].start()
        until(lambda: ledger._group._leaders == 2)  # a second group did not wait for the first
        for thread in threads[2:]:
            thread.start()
        until(lambda: len(ledger._group._queue) == len(entries) - 2)  # no third in flight
    for thread in threads:
        thread.join(timeout=30)
    assert results == dict.fromkeys(range(len(entries)))
    assert ledger._group.commits == 3  # the six queued went in one transaction
    assert ledger.count() == len(entries)


def test_a_serial_twice_in_one_transaction_is_recorded_once(
    databases: Callable[[], Database],
) -> None:
    # One INSERT carries the whole group: a serial twice in it goes in once, the same
    # certificate again is that row, another certificate with its serial is refused alone.
    ledger = ledger_on(databases())
    entry, other = issued("twice"), issued("other")
    clash = replace(issued("clash"), serial=entry.serial)
    outcomes = ledger._record_batch([entry, clash, entry, other])
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
    assert isinstance(outcomes[1], DuplicateSerial)
    assert ledger.count() == 2
    assert ledger.get(entry.serial) == entry and ledger.get(other.serial) == other


def test_a_serverkeygen_match_finds_the_retry(databases: Callable[[], Database]) -> None:
    a, b = ledger_on(databases()), ledger_on(databases())
    csr, _ = make_csr("gateway-1")
    match = "0f" * 32  # the service's requester/subject/SAN hash (RFC 7030 §4.4.1)
    request = a.add_pending(
        csr, label="k", operation="serverkeygen", requester="g1", auth_method="basic", match=match
    )
    assert request.public_key_sha256 == match
    assert b.find_pending("k", match, request.subject) == request


def test_concurrent_decisions_and_claims_succeed_exactly_once(
    databases: Callable[[], Database],
) -> None:
    instances = [ledger_on(databases()) for _ in range(6)]
    csr, _ = make_csr("device-7")
    request = instances[0].add_pending(
        csr, label="", operation="simpleenroll", requester="device-7", auth_method="basic"
    )
    assert instances[1].find_pending("", request.public_key_sha256, request.subject) == request
    assert instances[2].list_pending(PendingStatus.PENDING) == [request]
    barrier = threading.Barrier(len(instances))

    def decide(ledger: PostgresLedger) -> str:
        barrier.wait()
        try:
            ledger.decide_pending(request.id, approve=True, reason="ok")
        except PendingStateError:
            return "refused"
        return "decided"

    with ThreadPoolExecutor(len(instances)) as pool:
        outcomes = list(pool.map(decide, instances))
    assert sorted(outcomes) == ["decided"] + ["refused"] * (len(instances) - 1)

    def claim(index: int) -> str | None:
        barrier.wait()
        holder = f"instance-{index}"
        won = instances[index].claim_pending(request.id, holder=holder, lease_seconds=60)
        return None if won is None else holder

    with ThreadPoolExecutor(len(instances)) as pool:
        holders = [h for h in pool.map(claim, range(len(instances))) if h is not None]
    assert len(holders) == 1
    claimed = instances[0].get_pending(request.id)
    assert claimed is not None and claimed.status is PendingStatus.ISSUING
    assert claimed.claimed_by == holders[0] and claimed.claimed_at is not None
    entry = issued("device-7")
    instances[1].record(entry)
    loser = next(f"instance-{i}" for i in range(len(instances)) if f"instance-{i}" != holders[0])
    with pytest.raises(PendingStateError):
        instances[2].mark_pending_issued(request.id, entry.serial, holder=loser)
    final = instances[3].mark_pending_issued(request.id, entry.serial, holder=holders[0])
    assert final.status is PendingStatus.ISSUED and final.serial == entry.serial
    assert instances[4].claim_pending(request.id, holder="late", lease_seconds=1) is None


def age_claim(ledger: PostgresLedger, request_id: str, seconds: int) -> None:
    """Make the request's claim `seconds` older, as if its holder had stalled that long."""
    ledger.database.run(
        lambda cursor: cursor.execute(
            "UPDATE pending_requests SET claimed_at = claimed_at - %s WHERE id = %s",
            (timedelta(seconds=seconds), request_id),
        )
    )


def test_an_expired_claim_is_taken_over_and_only_its_new_holder_marks(
    databases: Callable[[], Database],
) -> None:
    a, b = ledger_on(databases()), ledger_on(databases())
    csr, _ = make_csr("device-8")
    request = a.add_pending(
        csr, label="", operation="simpleenroll", requester="device-8", auth_method="basic"
    )
    assert a.claim_pending(request.id, holder="a", lease_seconds=60) is None  # not approved
    a.decide_pending(request.id, approve=True)
    assert a.claim_pending(request.id, holder="a", lease_seconds=60) is not None
    assert b.claim_pending(request.id, holder="b", lease_seconds=60) is None
    age_claim(a, request.id, 30)
    assert b.claim_pending(request.id, holder="b", lease_seconds=60) is None  # still live
    age_claim(a, request.id, 31)
    taken = b.claim_pending(request.id, holder="b", lease_seconds=60)
    assert taken is not None and taken.claimed_by == "b"
    late, fresh = issued("device-8"), issued("device-8")
    a.record(late)
    b.record(fresh)
    with pytest.raises(PendingStateError) as info:
        a.mark_pending_issued(request.id, late.serial, holder="a")
    assert info.value.request.claimed_by == "b"
    done = b.mark_pending_issued(request.id, fresh.serial, holder="b")
    assert (done.status, done.serial) == (PendingStatus.ISSUED, fresh.serial)
    with pytest.raises(ValueError):
        a.claim_pending(request.id, holder="a", lease_seconds=0)


def test_a_released_claim_is_taken_at_once_by_another_instance(
    databases: Callable[[], Database],
) -> None:
    a, b = ledger_on(databases()), ledger_on(databases())
    csr, _ = make_csr("device-9")
    request = a.add_pending(
        csr, label="", operation="simpleenroll", requester="device-9", auth_method="basic"
    )
    a.decide_pending(request.id, approve=True)
    assert a.claim_pending(request.id, holder="a", lease_seconds=60) is not None
    assert b.claim_pending(request.id, holder="b", lease_seconds=60) is None  # live claim
    assert not b.release_pending(request.id, holder="b")  # not b's claim to give back
    assert a.release_pending(request.id, holder="a")
    taken = b.claim_pending(request.id, holder="b", lease_seconds=60)
    assert taken is not None and taken.claimed_by == "b"
    assert not a.release_pending(request.id, holder="a")


def test_poll_identifiers_are_shared_by_the_instances(databases: Callable[[], Database]) -> None:
    a, b = ledger_on(databases()), ledger_on(databases())
    assert a.poll_id("ra", "bob", "f1") is None
    a.keep_poll("ra", "bob", "f1", "poll-1")
    assert b.poll_id("ra", "bob", "f1") == "poll-1"
    assert b.poll_id("ra", "eve", "f1") is None
    b.keep_poll("ra", "bob", "f1", "poll-2")
    assert a.poll_id("ra", "bob", "f1") == "poll-2"
    b.forget_poll("ra", "bob", "f1")
    assert a.poll_id("ra", "bob", "f1") is None


def test_schema_1_is_upgraded_keeping_pending_requests(cluster: PgCluster) -> None:
    import psycopg

    from python_est.ledger.postgres import PostgresLedger
    from python_est.pgsql import SCHEMA_VERSION, Database, upgrade
    from python_est.pgsql.schema import MIGRATIONS

    db = Database(cluster.create_database(), pool_size=2)
    try:

        def version_1(cursor: Cursor) -> None:
            cursor.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for statement in MIGRATIONS[0]:
                cursor.execute(statement.encode("utf-8"))
            cursor.execute("INSERT INTO schema_version (version) VALUES (1)")

        db.run(version_1)
        csr, _ = make_csr("device-9")
        # An approved request written by the previous version (its columns only).
        db.run(
            lambda cursor: cursor.execute(
                "INSERT INTO pending_requests (id, created_at, label, operation, requester,"
                " auth_method, subject, public_key_sha256, csr_pem, status)"
                " VALUES ('r1', now(), '', 'simpleenroll', 'd', 'basic', 'CN=device-9', 'ab',"
                " %s, 'approved')",
                (csr.public_bytes(Encoding.PEM).decode(),),
            )
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            db.run(lambda cursor: cursor.execute("UPDATE pending_requests SET status = 'issuing'"))
        assert upgrade(db) == (1, SCHEMA_VERSION)
        claimed = PostgresLedger(db).claim_pending("r1", holder="a", lease_seconds=60)
        assert claimed is not None and claimed.status is PendingStatus.ISSUING
        assert (claimed.subject, claimed.claimed_by) == ("CN=device-9", "a")
    finally:
        db.close()


def test_connections_heal_after_a_drop_and_an_outage_is_unavailable(
    cluster: PgCluster, url: str, databases: Callable[[], Database]
) -> None:
    ledger = ledger_on(databases())
    ledger.record(issued("a"))
    assert cluster.terminate_backends(url) >= 1
    ledger.record(issued("b"))  # the dead pooled connection is replaced transparently
    assert ledger.count() == 2
    cluster.stop()
    try:
        with pytest.raises(Unavailable) as caught:
            ledger.record(issued("c"))
        assert caught.value.status == 503 and caught.value.retry_after > 0
    finally:
        cluster.start()
    ledger.record(issued("d"))
    assert ledger.count() == 3


def test_users_are_shared_and_unknown_users_are_simulated_alike(
    databases: Callable[[], Database], tmp_path: Path
) -> None:
    from python_est.users.database import DatabaseUserStore

    a, b = DatabaseUserStore(databases()), DatabaseUserStore(databases())
    a.add("alice", PASSWORD, allowed_names=["alice", "dev1.example"])
    assert b.exists("alice") and b.check_password("alice", PASSWORD)
    assert not b.check_password("alice", "wrong") and not b.check_password("nobody", PASSWORD)
    assert b.allowed_names("alice") == ("alice", "dev1.example")
    assert b.list_users() == ["alice"] and b"alice" in b.srp_verifiers()
    assert a.srp_verifiers()[b"mallory"] == b.srp_verifiers()[b"mallory"]  # one shared secret
    assert b.srp_verifiers()[b"alice"][2] != a.srp_verifiers()[b"mallory"][2]
    b.passwd("alice", "another password")
    assert a.check_password("alice", "another password")
    b.set_allowed_names("alice", None)
    assert a.allowed_names("alice") == ("alice",)
    with pytest.raises(UserStoreError, match="already exists"):
        b.add("alice", PASSWORD)
    b.remove("alice")
    assert not a.exists("alice") and a.reload() is False

    file_store = UserStore.create(tmp_path / "users.srp")
    file_store.add("bob", "bob's password", allowed_names=["bob", "bob.example"])
    file_store.add("carol", "carol's password")
    assert a.import_user_file(tmp_path / "users.srp") == ["bob", "carol"]
    assert b.check_password("bob", "bob's password") and b.check_password(
        "carol", "carol's password"
    )
    assert b.allowed_names("bob") == ("bob", "bob.example")
    assert b.srp_verifiers()[b"bob"] == file_store.srp_verifiers()[b"bob"]
    with pytest.raises(UserStoreError, match="already exist"):
        a.import_user_file(tmp_path / "users.srp")


def test_failure_counters_are_shared_between_instances(databases: Callable[[], Database]) -> None:
    from python_est.ratelimit import Limits, LoginLimiter
    from python_est.ratelimit.database import DatabaseCounters

    limits = Limits(3, account_max_failures=4, address_max_failures=5, window=60, lockout=30)
    a = LoginLimiter(DatabaseCounters(databases()), limits)
    b = LoginLimiter(DatabaseCounters(databases()), limits)
    nat = "192.0.2.1"
    b.record_success("carol", nat)  # carol logged in from the NAT before
    a.record_failure("eve", nat)
    b.record_failure("\u212a\u212a", nat)  # another name
    a.record_failure("eve", nat)
    b.check("eve", nat)
    b.record_failure("EVE", nat)  # the same account, counted through another instance
    with pytest.raises(TooManyRequests) as caught:
        a.check("eve", nat)
    assert caught.value.status == 429 and 0 < caught.value.retry_after <= 30
    a.check("bob", nat)  # another user behind the same address still gets in
    a.record_failure("mallory", nat)  # the fifth failure from this address locks it
    with pytest.raises(TooManyRequests):
        b.check("bob", nat)
    b.check("carol", nat)  # except for a known-good pair
    assert {(item.kind, item.user) for item in b.lockouts()} == {("pair", "eve"), ("addr", None)}
    assert sorted(item.kind for item in a.clear(nat)) == ["addr", "pair"]
    assert b.lockouts() == []
    b.check("bob", nat)


def test_look_alike_user_names_are_refused_in_the_database(
    databases: Callable[[], Database], tmp_path: Path
) -> None:
    from python_est.users.database import DatabaseUserStore

    store = DatabaseUserStore(databases())
    store.add("kiosk", PASSWORD)
    with pytest.raises(UserStoreError, match="collides with the existing user 'kiosk'"):
        store.add("\u212aiosk", PASSWORD)
    file_store = UserStore.create(tmp_path / "users.srp")
    file_store.add("KIOSK", PASSWORD)
    with pytest.raises(UserStoreError, match="'KIOSK' collides"):
        store.import_user_file(tmp_path / "users.srp")
    assert store.list_users() == ["kiosk"]


def test_ticket_keys_are_shared_and_rotate_with_a_grace_period(
    databases: Callable[[], Database],
) -> None:
    from python_est.ticketkeys.database import TicketKeyRing

    now = [0.0]
    rings = [
        TicketKeyRing(db, rotate_after=0.5, refresh=0.1, clock=lambda: now[0])
        for db in (databases(), databases())
    ]
    first = rings[0].keys()
    assert len(first) == 1 and len(first[0]) == 32
    assert rings[1].keys() == first
    time.sleep(0.6)
    now[0] += 1
    rotated = rings[1].keys()
    assert len(rotated) == 2 and rotated[0] == first[0]  # new key published, not sealing yet
    time.sleep(0.25)
    now[0] += 1
    assert rings[0].keys() == [rotated[1], first[0]]  # now it seals; the old one still opens


def test_server_answers_503_while_the_database_is_down_then_recovers(
    cluster: PgCluster, url: str, start_est_server: Callable[[str], RunningServer]
) -> None:
    server = start_est_server(f"[ledger]\nurl = {url}\n")
    assert server.state.users is not None
    server.state.users.add("device-1", PASSWORD)

    def enroll() -> int:
        csr, _ = make_csr("device-1")
        request = build_request(
            "POST",
            "/.well-known/est/simpleenroll",
            csr_body(csr),
            {"Content-Type": "application/pkcs10", "Authorization": basic("device-1", PASSWORD)},
            server.port,
        )
        reply = https(server.port, request, cafile=server.ca_file)
        if reply.status == 503:
            assert int(reply.headers["Retry-After"]) > 0
        if reply.status == 200:
            (cert,) = wire.decode_certs_only(reply.body)
            assert server.state.ledger.get(cert.serial_number) is not None
        return reply.status

    assert enroll() == 200
    csr, _ = make_csr("device-1")
    reply = srp(
        server.port,
        "device-1",
        PASSWORD,
        build_request(
            "POST",
            "/.well-known/est/simpleenroll",
            csr_body(csr),
            {"Content-Type": "application/pkcs10"},
            server.port,
        ),
    )
    assert reply.status == 200
    cluster.stop()
    try:
        assert enroll() == 503
    finally:
        cluster.start()
    assert enroll() == 200
    assert server.state.ledger.count() == 3


def test_current_certificates_as_in_sqlite(databases: Callable[[], Database]) -> None:
    from tests.unit.test_ledger_current import exercise_current_certificates

    exercise_current_certificates(ledger_on(databases()))


def _srp_session(
    port: int, user: str, password: str, session: object = None
) -> tuple[object, bool]:
    """One SRP handshake and GET /cacerts: (the session, whether it was resumed)."""
    import socket

    from tlslite.api import HandshakeSettings, TLSConnection

    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = ["srp_sha"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        conn = TLSConnection(raw)
        conn.handshakeClientSRP(user, password, settings=settings, session=session)
        conn.sendall(build_request("GET", "/.well-known/est/cacerts", port=port))
        conn.read()
        resumed = bool(conn.resumed)
        conn.close()
        return conn.session, resumed


def test_srp_resumption_ends_when_another_instance_changes_the_password_and_lockouts_are_shared(
    url: str,
    databases: Callable[[], Database],
    start_est_server: Callable[[str], RunningServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tlslite.errors import TLSRemoteAlert

    from python_est.users.database import DatabaseUserStore

    server = start_est_server(f"[ledger]\nurl = {url}\n[auth]\nmax_failures = 2\n")
    admin = DatabaseUserStore(databases())  # `python-est user ...` elsewhere in the fleet
    admin.add("alice", PASSWORD)
    session, resumed = _srp_session(server.port, "alice", PASSWORD)
    assert not resumed and _srp_session(server.port, "alice", PASSWORD, session)[1]
    admin.passwd("alice", "the new password")
    with pytest.raises(TLSRemoteAlert, match="bad_record_mac"):
        _srp_session(server.port, "alice", PASSWORD, session)  # no resumption: full, fails

    with pytest.raises(TLSRemoteAlert, match="bad_record_mac"):
        _srp_session(server.port, "alice", "guess")  # the second failure: the pair locks
    with pytest.raises(TLSRemoteAlert, match="access_denied"):
        _srp_session(server.port, "alice", "the new password")
    cfg = str(server.root / "est.cfg")
    capsys.readouterr()
    assert main(["-c", cfg, "lockouts", "list"]) == 0
    assert capsys.readouterr().out.startswith("user 'alice' from 127.0.0.1: locked for another")
    assert main(["-c", cfg, "lockouts", "clear", "alice"]) == 0
    assert "cleared the lockout of user 'alice'" in capsys.readouterr().out
    assert not _srp_session(server.port, "alice", "the new password")[1]


def test_the_issuing_ca_is_recorded_and_filters_as_in_sqlite(
    databases: Callable[[], Database],
) -> None:
    ledger = ledger_on(databases())
    one, two = issued("one"), replace(issued("two"), ca="iot")
    ledger.record(one)
    ledger.record(two)
    assert ledger.get(two.serial) == two and ledger.get(one.serial) == one
    assert [e.serial for e in ledger.list_certificates(ca="iot")] == [two.serial]
    assert [e.serial for e in ledger.list_certificates(ca="default", label="")] == [one.serial]
    assert ledger.get_issued_by("iot", two.serial) == two
    assert ledger.get_issued_by("default", two.serial) is None
    with pytest.raises(UnknownSerial):
        ledger.revoke(two.serial, "keyCompromise", ca="default")
    assert not ledger.is_revoked(two.serial)
    revoked = ledger.revoke(two.serial, "keyCompromise", ca="iot")
    assert ledger.list_certificates(revoked=True, ca="iot") == [revoked]
    assert ledger.list_certificates(revoked=True, ca="default") == []
    assert ledger.list_certificates(revoked=False, ca="default") == [one]


def test_rows_from_schema_2_become_the_default_ca_s(cluster: PgCluster) -> None:
    from python_est.pgsql import SCHEMA_VERSION, Database, upgrade
    from python_est.pgsql.schema import MIGRATIONS

    db = Database(cluster.create_database(), pool_size=2)
    try:

        def version_2(cursor: Cursor) -> None:
            cursor.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for number in (1, 2):
                for statement in MIGRATIONS[number - 1]:
                    cursor.execute(statement.encode("utf-8"))
                cursor.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))

        db.run(version_2)
        old = issued("old")
        db.run(
            lambda cursor: cursor.execute(
                "INSERT INTO certificates (serial, subject, sans, not_before, not_after,"
                " issued_at, requester, auth_method, label, operation, server_generated_key,"
                " pem) VALUES (%s, %s, '[]', %s, %s, %s, 'old', 'basic', '', 'simpleenroll',"
                " false, %s)",
                (
                    serial_hex(old.serial),
                    old.subject,
                    old.not_before,
                    old.not_after,
                    old.issued_at,
                    old.pem,
                ),
            )
        )
        assert upgrade(db) == (2, SCHEMA_VERSION)
        entry = ledger_on(db).get(old.serial)
        assert entry is not None and entry.ca == "default"
    finally:
        db.close()
