"""`server.workers`: each worker accepts for itself, within the limit, and ends on stop.

A queue stands in for the listening socket: `accept` takes one item (or gives up after a short
wait, as the real one does after its poll interval), and `serve` blocks until the test lets the
item go, so the number of connections in service is under the test's control.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from python_est.server.workers import Workers
from tests.conftest import captured_records

pytestmark = pytest.mark.integration

DEADLINE = 10.0


def wait_for(condition: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, "condition not reached before the deadline"
        time.sleep(0.005)


class Harness:
    """Items to accept, and a gate per item that `serve` waits on."""

    def __init__(self, limit: int) -> None:
        self.incoming: queue.Queue[int] = queue.Queue()
        self.gates: dict[int, threading.Event] = {}
        self.accepted_by: dict[int, str] = {}
        self.served_by: dict[int, str] = {}
        self.serving: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = Workers(limit, self.accept, self.serve, self.stop, name="test-conn")

    def offer(self, item: int, *, hold: bool = False) -> None:
        gate = threading.Event()
        if not hold:
            gate.set()
        self.gates[item] = gate
        self.incoming.put(item)

    def accept(self) -> int | None:
        try:
            item = self.incoming.get(timeout=0.05)
        except queue.Empty:
            return None
        self.accepted_by[item] = threading.current_thread().name
        return item

    def serve(self, item: int) -> None:
        with self.lock:
            self.serving.add(item)
        self.served_by[item] = threading.current_thread().name
        self.gates[item].wait(DEADLINE)
        with self.lock:
            self.serving.discard(item)

    def in_service(self) -> int:
        with self.lock:
            return len(self.serving)


@pytest.fixture
def harness() -> Iterator[Callable[[int], Harness]]:
    made: list[Harness] = []

    def make(limit: int) -> Harness:
        made.append(Harness(limit))
        made[-1].workers.start()
        return made[-1]

    yield make
    for item in made:
        item.stop.set()
        for gate in item.gates.values():
            gate.set()
        wait_for(lambda item=item: item.workers.threads == 0)  # type: ignore[misc]


def test_each_connection_is_served_by_the_worker_that_accepted_it(
    harness: Callable[[int], Harness],
) -> None:
    h = harness(4)
    for item in range(20):
        h.offer(item, hold=item % 3 == 0)  # some stay in service while others come and go
    wait_for(lambda: len(h.accepted_by) == 20 or h.workers.full)
    for gate in h.gates.values():
        gate.set()
    wait_for(lambda: len(h.served_by) == 20 and h.in_service() == 0)
    assert h.served_by == h.accepted_by
    assert all(name.startswith("test-conn-") for name in h.served_by.values())


def test_never_more_workers_than_the_limit_and_none_accepts_while_all_are_busy(
    harness: Callable[[int], Harness],
) -> None:
    h = harness(3)
    for item in range(5):
        h.offer(item, hold=True)
    wait_for(lambda: h.in_service() == 3)
    assert h.workers.full and h.workers.threads == 3
    assert h.incoming.qsize() == 2  # the rest wait, as connections wait in the listen queue
    h.gates[0].set()  # one connection is done: its worker takes the next
    wait_for(lambda: h.incoming.qsize() == 1 and h.in_service() == 3)
    assert h.workers.threads == 3


def test_workers_are_started_only_when_every_one_is_busy(
    harness: Callable[[int], Harness],
) -> None:
    h = harness(64)
    for item in range(30):  # one at a time: the first worker serves, a second one accepts
        h.offer(item)
        wait_for(lambda item=item: item in h.served_by and h.in_service() == 0)  # type: ignore[misc]
    assert h.workers.threads <= 2


def test_on_stop_idle_workers_end_and_busy_ones_end_when_done(
    harness: Callable[[int], Harness],
) -> None:
    h = harness(4)
    h.offer(1, hold=True)
    h.offer(2, hold=True)
    wait_for(lambda: h.in_service() == 2)
    h.stop.set()
    wait_for(lambda: h.workers.threads == 2)  # the idle leader ended; two still serve
    h.offer(3)  # after the stop nobody accepts any more
    h.gates[1].set()
    h.gates[2].set()
    wait_for(lambda: h.workers.threads == 0)
    assert 3 not in h.accepted_by


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Workers(0, lambda: None, lambda item: None, threading.Event())


def test_an_error_in_accept_or_serve_is_logged_and_the_worker_carries_on(
    harness: Callable[[int], Harness],
) -> None:
    h = harness(1)  # a single worker: if it died, nothing would be accepted any more
    real_accept, real_serve = h.accept, h.serve
    failures = {"accept": 1, "serve": 1}

    def accept() -> int | None:
        if failures["accept"]:
            failures["accept"] -= 1
            raise RuntimeError("accept bug")
        return real_accept()

    def serve(item: int) -> None:
        if failures["serve"]:
            failures["serve"] -= 1
            raise RuntimeError("serve bug")
        real_serve(item)

    with captured_records("python_est.server", logging.ERROR) as records:
        h.workers._accept, h.workers._serve = accept, serve
        h.offer(1)  # served by the failing serve
        h.offer(2)
        wait_for(lambda: 2 in h.served_by)
    messages = [r.getMessage() for r in records]
    assert "accepting a connection failed" in messages
    assert "serving a connection failed" in messages
    assert h.workers.threads == 1
