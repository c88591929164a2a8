"""Group commit: concurrent records share transactions, and each fails or succeeds alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from python_est.errors import LedgerError, Unavailable
from python_est.ledger import DuplicateSerial, IssuedCertificate, SqliteLedger
from python_est.ledger.group import GroupCommit
from tests.unit.test_ledger import make_cert, make_entry


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class Outcomes:
    """Threads that each submit one item; what each got back, by item."""

    def __init__(self) -> None:
        self.results: dict[object, BaseException | None] = {}
        self.threads: list[threading.Thread] = []

    def start(self, submit: Callable[[object], None], item: object) -> None:
        def body() -> None:
            try:
                submit(item)
            except BaseException as exc:
                self.results[item] = exc
            else:
                self.results[item] = None

        thread = threading.Thread(target=body)
        self.threads.append(thread)
        thread.start()

    def join(self) -> dict[object, BaseException | None]:
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads)
        return self.results


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def queued(group: GroupCommit[object] | GroupCommit[IssuedCertificate]) -> int:
    # Entries waiting for the transaction in progress to end.
    return len(group._queue)


def test_entries_queued_during_a_commit_share_the_next_transaction() -> None:
    batches: list[list[object]] = []
    first_may_commit = threading.Event()

    def commit(batch: Sequence[object]) -> list[BaseException | None]:
        if not batches:
            first_may_commit.wait(10)
        batches.append(list(batch))
        return [None] * len(batch)

    group: GroupCommit[object] = GroupCommit(commit)
    outcomes = Outcomes()
    outcomes.start(group.submit, 0)
    wait_for(lambda: group._leaders > 0)
    for item in range(1, 9):
        outcomes.start(group.submit, item)
    wait_for(lambda: queued(group) == 8)
    first_may_commit.set()
    assert outcomes.join() == dict.fromkeys(range(9))
    assert batches[0] == [0]
    assert sorted(batches[1]) == list(range(1, 9))  # type: ignore[type-var]
    assert group.commits == 2


def test_a_lone_entry_commits_at_once_and_a_limit_of_one_never_groups() -> None:
    sizes: list[int] = []

    def commit(batch: Sequence[object]) -> list[BaseException | None]:
        sizes.append(len(batch))
        return [None] * len(batch)

    group: GroupCommit[object] = GroupCommit(commit, limit=1)
    group.submit("alone")
    outcomes = Outcomes()
    for item in range(6):
        outcomes.start(group.submit, item)
    assert set(outcomes.join().values()) == {None}
    assert sizes == [1] * 7
    with pytest.raises(ValueError):
        GroupCommit(commit, limit=0)


def test_with_two_in_flight_a_second_group_commits_beside_the_first_and_a_third_waits() -> None:
    release = threading.Event()
    batches: list[list[object]] = []
    lock = threading.Lock()

    def commit(batch: Sequence[object]) -> list[BaseException | None]:
        with lock:
            batches.append(list(batch))
        release.wait(10)  # every transaction stays in flight until released
        return [None] * len(batch)

    group: GroupCommit[object] = GroupCommit(commit, in_flight=2)
    outcomes = Outcomes()
    outcomes.start(group.submit, 0)
    wait_for(lambda: len(batches) == 1)
    outcomes.start(group.submit, 1)
    wait_for(lambda: len(batches) == 2)  # did not wait for the first to end
    for item in range(2, 8):
        outcomes.start(group.submit, item)
    wait_for(lambda: queued(group) == 6)
    assert group._leaders == 2 and len(batches) == 2  # no third transaction while two run
    release.set()
    assert outcomes.join() == dict.fromkeys(range(8))
    assert batches[:2] == [[0], [1]]
    assert sorted(batches[2]) == list(range(2, 8))  # type: ignore[type-var]
    assert group.commits == 3
    with pytest.raises(ValueError):
        GroupCommit(commit, in_flight=0)


def test_a_failed_transaction_fails_exactly_its_own_entries() -> None:
    # Batch 1 holds the door; batch 2 (items 1-4) fails as a whole; batch 3 (items 5-6, queued
    # while batch 2 was committing) commits.
    gate = {1: threading.Event(), 2: threading.Event()}
    calls: list[list[object]] = []
    failure = LedgerError("the certificate ledger is unavailable")
    group: GroupCommit[object]

    def commit(batch: Sequence[object]) -> list[BaseException | None]:
        calls.append(list(batch))
        if len(calls) in gate:
            gate[len(calls)].wait(10)
        if len(calls) == 2:
            raise failure
        return [None] * len(batch)

    group = GroupCommit(commit)
    outcomes = Outcomes()
    outcomes.start(group.submit, 0)
    wait_for(lambda: len(calls) == 1)
    for item in range(1, 5):
        outcomes.start(group.submit, item)
    wait_for(lambda: queued(group) == 4)
    gate[1].set()
    wait_for(lambda: len(calls) == 2)
    for item in (5, 6):
        outcomes.start(group.submit, item)
    wait_for(lambda: queued(group) == 2)
    gate[2].set()
    results = outcomes.join()
    assert sorted(calls[1]) == [1, 2, 3, 4]  # type: ignore[type-var]
    assert {item: results[item] for item in range(1, 5)} == dict.fromkeys(range(1, 5), failure)
    assert [results[item] for item in (0, 5, 6)] == [None, None, None]


def test_a_commit_that_miscounts_fails_its_batch_instead_of_hanging() -> None:
    group: GroupCommit[object] = GroupCommit(lambda batch: [])
    with pytest.raises(RuntimeError):
        group.submit("x")
    group = GroupCommit(lambda batch: [None])  # the group still works afterwards
    group.submit("y")


# --- SQLite ---------------------------------------------------------------------------------


def held_batch(
    ledger: SqliteLedger, first: IssuedCertificate, rest: list[IssuedCertificate]
) -> dict[object, BaseException | None]:
    """Record `first` while the ledger's lock is held, then `rest` queued behind it; release."""
    outcomes = Outcomes()
    with ledger._lock:
        outcomes.start(ledger.record, first)  # type: ignore[arg-type]
        wait_for(lambda: ledger._group._leaders > 0)
        for entry in rest:
            outcomes.start(ledger.record, entry)  # type: ignore[arg-type]
        wait_for(lambda: queued(ledger._group) == len(rest))
    return outcomes.join()


def test_sqlite_concurrent_records_share_one_transaction_and_each_is_durable(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "ledger.sqlite3"
    entries = [make_entry(make_cert(key, cn=f"d{i}")) for i in range(16)]
    with SqliteLedger(path) as ledger:
        results = held_batch(ledger, entries[0], entries[1:])
        assert set(results.values()) == {None}
        assert ledger._group.commits == 2
        # Every record returned after its commit: another connection sees every row.
        with sqlite3.connect(path) as other:
            rows = other.execute("SELECT count(*) FROM certificates").fetchone()
        assert rows == (16,)


def test_sqlite_a_serial_collision_fails_only_its_own_record(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.record(make_entry(make_cert(key, serial=1000, cn="old")))
        clash_old = make_entry(make_cert(key, serial=1000, cn="clash-old"))
        twin_a = make_entry(make_cert(key, serial=2000, cn="twin-a"))
        twin_b = make_entry(make_cert(key, serial=2000, cn="twin-b"))
        good = [make_entry(make_cert(key, cn=f"good-{i}")) for i in range(4)]
        results = held_batch(
            ledger, good[0], [good[1], clash_old, twin_a, good[2], twin_b, good[3]]
        )
        assert ledger._group.commits == 3
        assert [results[entry] for entry in good] == [None] * 4
        assert isinstance(results[clash_old], DuplicateSerial)
        twins = [results[twin_a], results[twin_b]]
        assert twins.count(None) == 1  # whichever was inserted first keeps the serial
        assert any(isinstance(result, DuplicateSerial) for result in twins)
        assert ledger.count() == 1 + 4 + 1
        kept = ledger.get(1000)
        assert kept is not None and kept.subject.endswith("CN=old")


def test_sqlite_a_failed_transaction_records_none_of_its_batch(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "ledger.sqlite3"
    with SqliteLedger(path) as ledger:
        ledger.record(make_entry(make_cert(key, cn="first")))
        batch = [make_entry(make_cert(key, cn=f"b{i}")) for i in range(5)]
        # Another process holds the write lock past the busy timeout: every transaction fails,
        # as on a full disk, and each of its records gets the error.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        ledger._conn.execute("PRAGMA busy_timeout = 50")
        outcomes = Outcomes()
        for entry in batch:
            outcomes.start(ledger.record, entry)  # type: ignore[arg-type]
        results = outcomes.join()
        blocker.execute("ROLLBACK")
        blocker.close()
        assert all(isinstance(results[entry], Unavailable) for entry in batch)
        assert ledger.count() == 1
        ledger.record(batch[0])  # the next transaction is a fresh attempt
        assert ledger.count() == 2
