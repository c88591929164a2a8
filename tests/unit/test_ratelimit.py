"""FailureLimiter: lockout after repeated failures, expiry, reset, bounded memory, threads."""

from __future__ import annotations

import threading

import pytest

from python_est.errors import TooManyRequests
from python_est.ratelimit import FailureLimiter, address_key, user_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter(clock: FakeClock, **kwargs: int) -> FailureLimiter:
    settings = {"max_failures": 3, "window_s": 60, "lockout_s": 120, **kwargs}
    return FailureLimiter(
        settings["max_failures"], settings["window_s"], settings["lockout_s"], clock=clock
    )


def test_locks_after_max_failures_with_retry_after(clock: FakeClock) -> None:
    lim = limiter(clock)
    keys = [user_key("alice")]
    for _ in range(2):
        lim.record_failure(keys)
        lim.check(keys)
    lim.record_failure(keys)
    with pytest.raises(TooManyRequests) as info:
        lim.check(keys)
    assert info.value.status == 429
    assert info.value.retry_after == 120
    assert ("Retry-After", "120") in info.value.headers()
    clock.now += 100.5
    with pytest.raises(TooManyRequests) as info:
        lim.check(keys)
    assert info.value.retry_after == 20  # rounded up, never 0


def test_lock_expires(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        lim.record_failure(["k"])
    clock.now += 120
    lim.check(["k"])
    # After the lockout the count starts from zero.
    lim.record_failure(["k"])
    lim.check(["k"])


def test_failures_outside_the_window_do_not_count(clock: FakeClock) -> None:
    lim = limiter(clock)
    lim.record_failure(["k"])
    lim.record_failure(["k"])
    clock.now += 61
    lim.record_failure(["k"])
    lim.check(["k"])
    assert len(lim) == 1


def test_success_resets_only_the_given_key(clock: FakeClock) -> None:
    lim = limiter(clock)
    user, addr = user_key("bob"), address_key("192.0.2.7:5000")
    for _ in range(2):
        lim.record_failure([user, addr])
    lim.record_success([user])
    lim.record_failure([user, addr])
    lim.check([user])
    with pytest.raises(TooManyRequests):
        lim.check([addr])
    with pytest.raises(TooManyRequests):
        lim.check([user, addr])


def test_success_does_not_unlock(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        lim.record_failure(["k"])
    lim.record_success(["k"])
    with pytest.raises(TooManyRequests):
        lim.check(["k"])


def test_keys_are_independent(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        lim.record_failure([user_key("a")])
    lim.check([user_key("b")])
    with pytest.raises(TooManyRequests):
        lim.check([user_key("b"), user_key("a")])


def test_memory_is_bounded(clock: FakeClock) -> None:
    lim = FailureLimiter(3, 60, 120, clock=clock, max_keys=100)
    for i in range(1000):
        lim.record_failure([f"k{i}"])
    assert len(lim) == 100
    # The most recently touched keys are kept.
    lim.record_failure(["k999"])
    lim.record_failure(["k999"])
    with pytest.raises(TooManyRequests):
        lim.check(["k999"])


def test_expired_entries_are_dropped(clock: FakeClock) -> None:
    lim = limiter(clock)
    for i in range(50):
        lim.record_failure([f"k{i}"])
    clock.now += 61
    lim.record_failure(["fresh"])
    assert len(lim) == 1


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
    ],
)
def test_address_key_drops_the_port(address: str, key: str) -> None:
    assert address_key(address) == key


def test_user_and_address_keys_do_not_collide() -> None:
    assert user_key("192.0.2.1") != address_key("192.0.2.1")


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        FailureLimiter(0, 60, 60)


def test_thread_safe_counting(clock: FakeClock) -> None:
    lim = FailureLimiter(400, 60, 120, clock=clock)

    def hammer() -> None:
        for _ in range(100):
            lim.record_failure(["shared"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exactly 400 failures were counted: the 400th locked the key.
    with pytest.raises(TooManyRequests):
        lim.check(["shared"])
