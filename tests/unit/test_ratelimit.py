"""The lockout rule (pair, account, address, known-good pairs) over the memory and SQLite stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_est.errors import TooManyRequests, Unavailable
from python_est.ratelimit import (
    CounterStore,
    Limits,
    LoginLimiter,
    MemoryCounters,
    SqliteCounters,
    address_key,
    pair_key,
    parse_key,
    user_key,
)
from python_est.usernames import fold_username

NAT = "192.0.2.1:4433"
ELSEWHERE = "198.51.100.7:5000"
# Pair 3, account 5, address 6 failures within 60 s lock for 120 s.
LIMITS = Limits(3, account_max_failures=5, address_max_failures=6, window=60, lockout=120)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
def store(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> Iterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounters(clock=clock)
        return
    counters = SqliteCounters(tmp_path / "lockouts.sqlite3", clock=clock)
    yield counters
    counters.close()


@pytest.fixture
def limiter(store: CounterStore) -> LoginLimiter:
    return LoginLimiter(store, LIMITS)


def refused(limiter: LoginLimiter, user: str | None, address: str) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as info:
        limiter.check(user, address)
    assert info.value.status == 429
    return info.value


def test_a_pair_locks_at_max_failures_and_says_how_long(
    limiter: LoginLimiter, clock: FakeClock
) -> None:
    for _ in range(2):
        limiter.record_failure("alice", NAT)
        limiter.check("alice", NAT)
    limiter.record_failure("alice", NAT)
    err = refused(limiter, "alice", NAT)
    assert err.retry_after == 120 and ("Retry-After", "120") in err.headers()
    assert "locked for another 120 s" in err.detail
    clock.now += 100.5
    assert refused(limiter, "alice", NAT).retry_after == 20  # rounded up, never 0
    clock.now += 20
    limiter.check("alice", NAT)


def test_nat_other_users_and_other_addresses_still_get_in(limiter: LoginLimiter) -> None:
    for _ in range(3):
        limiter.record_failure("alice", NAT)
    refused(limiter, "alice", NAT)
    limiter.check("bob", NAT)  # another device behind the same NAT
    limiter.check("alice", ELSEWHERE)  # the account is not locked by one pair's guesses


@pytest.mark.parametrize(
    "spelling",
    ["\u212aiosk", "KIOSK", "\uff4b\uff49\uff4f\uff53\uff4b", "Kiosk"],
    ids=["kelvin", "upper", "wide", "title"],
)
def test_look_alike_spellings_share_one_counter(limiter: LoginLimiter, spelling: str) -> None:
    for _ in range(3):
        limiter.record_failure(spelling, NAT)
    refused(limiter, "kiosk", NAT)


def test_spreading_over_addresses_locks_the_account(limiter: LoginLimiter) -> None:
    for i in range(5):
        limiter.record_failure("alice", f"203.0.113.{i}")
    err = refused(limiter, "alice", ELSEWHERE)
    assert "for this user name;" in err.detail
    limiter.check("bob", ELSEWHERE)


def test_a_spray_locks_the_address_except_for_known_good_pairs(limiter: LoginLimiter) -> None:
    limiter.record_success("carol", NAT)  # carol logged in from the NAT before
    for i in range(6):
        limiter.record_failure(f"guess{i}", NAT)
    err = refused(limiter, "bob", NAT)
    assert "from this address" in err.detail
    refused(limiter, None, NAT)
    limiter.check("carol", NAT)
    limiter.check("bob", ELSEWHERE)


def test_a_known_good_pair_is_exempt_from_an_account_lock_not_a_pair_lock(
    limiter: LoginLimiter,
) -> None:
    limiter.record_success("alice", NAT)
    for i in range(5):
        limiter.record_failure("alice", f"203.0.113.{i}")
    refused(limiter, "alice", ELSEWHERE)
    limiter.check("alice", NAT)
    for _ in range(3):
        limiter.record_failure("alice", NAT)
    refused(limiter, "alice", NAT)


def test_known_good_expires(store: CounterStore, clock: FakeClock) -> None:
    limiter = LoginLimiter(store, Limits(3, 5, 2, window=600, lockout=600, known_good=100))
    limiter.record_success("carol", NAT)
    limiter.record_failure("x", NAT)
    limiter.record_failure("y", NAT)
    limiter.check("carol", NAT)
    clock.now += 101
    refused(limiter, "carol", NAT)


def test_success_forgets_the_pair_failures_only(limiter: LoginLimiter) -> None:
    for _ in range(2):
        limiter.record_failure("alice", NAT)
    limiter.record_success("alice", NAT)
    for _ in range(2):
        limiter.record_failure("alice", NAT)
    limiter.check("alice", NAT)  # 2 + 2 failures, but the pair was reset in between
    limiter.record_failure("alice", ELSEWHERE)
    refused(limiter, "alice", ELSEWHERE)  # the account counted all five


def test_success_does_not_unlock(limiter: LoginLimiter) -> None:
    for _ in range(3):
        limiter.record_failure("alice", NAT)
    limiter.record_success("alice", NAT)
    refused(limiter, "alice", NAT)


def test_failures_outside_the_window_do_not_count(limiter: LoginLimiter, clock: FakeClock) -> None:
    limiter.record_failure("alice", NAT)
    limiter.record_failure("alice", NAT)
    clock.now += 61
    limiter.record_failure("alice", NAT)
    limiter.check("alice", NAT)


def test_half_open_handshakes_count_against_the_address(limiter: LoginLimiter) -> None:
    for _ in range(6):
        limiter.record_incomplete(NAT)
    refused(limiter, "anyone", NAT)
    limiter.check("anyone", ELSEWHERE)


def test_lockouts_are_listed_and_cleared_by_user_or_address(limiter: LoginLimiter) -> None:
    assert limiter.clear("alice") == []
    for _ in range(3):
        limiter.record_failure("Alice", NAT)
    for _ in range(6):
        limiter.record_incomplete(ELSEWHERE)
    listed = {(item.kind, item.user, item.address) for item in limiter.lockouts()}
    assert listed == {("pair", "alice", "192.0.2.1"), ("addr", None, "198.51.100.7")}
    assert all(item.remaining == 120 for item in limiter.lockouts())
    cleared = limiter.clear("ALICE")
    assert [(item.kind, item.user) for item in cleared] == [("pair", "alice")]
    limiter.check("alice", NAT)
    assert [item.kind for item in limiter.clear("198.51.100.7")] == ["addr"]
    assert limiter.lockouts() == []
    # Cleared means counted from zero again, not locked on the next failure.
    limiter.record_failure("alice", NAT)
    limiter.check("alice", NAT)


def test_clear_everything(limiter: LoginLimiter) -> None:
    for _ in range(3):
        limiter.record_failure("alice", NAT)
        limiter.record_failure("bob", NAT)
    kinds = sorted(item.kind for item in limiter.clear())
    assert kinds == ["addr", "pair", "pair"]  # six failures from NAT locked the address too
    assert limiter.lockouts() == []


def test_describe_escapes_the_user_name(limiter: LoginLimiter) -> None:
    for _ in range(3):
        limiter.record_failure("evil\u202e\x1b[2J", NAT)
    (item,) = limiter.lockouts()
    line = item.describe()
    assert "\x1b" not in line and "\u202e" not in line
    assert line.endswith("from 192.0.2.1: locked for another 120 s")


def test_the_sqlite_file_is_shared_and_private(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lockouts.sqlite3"
    one = LoginLimiter(SqliteCounters(path, clock=clock), LIMITS)
    other = LoginLimiter(SqliteCounters(path, clock=clock), LIMITS)  # another worker or the CLI
    for _ in range(3):
        one.record_failure("alice", NAT)
    refused(other, "alice", NAT)
    assert [item.user for item in other.clear("alice")] == ["alice"]
    one.check("alice", NAT)
    assert path.stat().st_mode & 0o077 == 0


def test_memory_is_bounded(clock: FakeClock) -> None:
    store = MemoryCounters(clock=clock, max_keys=100)
    limiter = LoginLimiter(store, LIMITS)
    for i in range(1000):
        limiter.record_incomplete(f"10.0.{i // 256}.{i % 256}")
    assert len(store) == 100
    for _ in range(6):
        limiter.record_incomplete("10.0.3.231")  # the most recently touched key is kept
    refused(limiter, None, "10.0.3.231")


def test_expired_entries_are_dropped(clock: FakeClock) -> None:
    store = MemoryCounters(clock=clock)
    limiter = LoginLimiter(store, LIMITS)
    for i in range(50):
        limiter.record_incomplete(f"10.0.0.{i}")
    clock.now += 61
    limiter.record_incomplete("10.0.1.1")
    assert len(store) == 1


def test_thread_safe_counting(store: CounterStore) -> None:
    limiter = LoginLimiter(store, Limits(400, 10_000, 10_000, window=60, lockout=120))

    def hammer() -> None:
        for _ in range(100):
            limiter.record_failure("shared", NAT)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exactly 400 failures were counted: the 400th locked the pair.
    refused(limiter, "shared", NAT)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "addr:192.0.2.1"),
        ("192.0.2.1:4433", "addr:192.0.2.1"),
        ("[2001:DB8::1]:4433", "addr:2001:db8::/64"),
        ("2001:db8::1", "addr:2001:db8::/64"),
        ("2001:db8::ffff:1", "addr:2001:db8::/64"),
        ("2001:db8:0:1::1", "addr:2001:db8:0:1::/64"),
        ("::ffff:192.0.2.9", "addr:192.0.2.9"),
        ("localhost", "addr:localhost"),
        ("a b\tc", "addr:abc"),  # never a space: pair keys split at the first one
    ],
)
def test_address_key_drops_the_port(address: str, key: str) -> None:
    assert address_key(address) == key


@pytest.mark.parametrize(
    "user",
    ["alice", "with space", "x:y", "\ufe55colon", "ß", "\u212a", "[2001:db8::1]", "a b c"],
)
def test_pair_keys_parse_back(user: str) -> None:
    parts = parse_key(pair_key(user, "[2001:db8::1]:443"))
    assert (parts.kind, parts.user, parts.address) == ("pair", fold_username(user), "2001:db8::/64")


def test_keys_stay_bounded_whatever_the_client_sends() -> None:
    # U+FDFA folds to 18 characters; a stored name has at most 128.
    huge = "\ufdfa" * 100_000
    assert len(user_key(huge)) < 256 * 18 + 10
    assert len(pair_key(huge, "[2001:db8::1]:1")) < 256 * 18 + 40


def test_user_and_address_keys_do_not_collide() -> None:
    assert user_key("192.0.2.1") != address_key("192.0.2.1")


@pytest.mark.parametrize(
    "limits",
    [
        {"max_failures": 0},
        {"account_max_failures": 0},
        {"address_max_failures": -1},
        {"window": 0},
        {"lockout": 0},
        {"known_good": 0},
    ],
)
def test_rejects_nonsense_limits(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Limits(**limits)


def test_an_unusable_counter_file_fails_closed_with_503(tmp_path: Path) -> None:
    store = SqliteCounters(tmp_path / "lockouts.sqlite3")
    limiter = LoginLimiter(store, LIMITS)
    store.close()  # as good as a vanished, locked or corrupt file: every query fails
    for attempt in (
        lambda: limiter.check("alice", NAT),
        lambda: limiter.record_failure("alice", NAT),
        lambda: limiter.lockouts(),
    ):
        with pytest.raises(Unavailable) as info:
            attempt()
        assert info.value.status == 503 and info.value.retry_after == 30
