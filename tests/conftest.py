"""Shared fixtures and the one skip policy.

`start_est_server(cfg_text)` starts a whole server (`est_harness.running_server`) with extra
config for a single test. Everything that drives a server lives in `scripts/est_harness/`, which
tests and scripts share (pytest's `pythonpath` puts `scripts` on the path).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from est_harness import RunningServer, running_server


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`python-est` commands configure the python_est logger; undo that after each test."""
    logger = logging.getLogger("python_est")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def start_est_server(tmp_path: Path) -> Iterator[Callable[[str], RunningServer]]:
    """Start a server with extra config text; stopped when the test ends."""
    with ExitStack() as stack:
        count = 0

        def start(cfg_text: str = "") -> RunningServer:
            nonlocal count
            count += 1
            return stack.enter_context(running_server(tmp_path / f"server{count}", cfg_text))

        yield start


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_records(name: str, level: int) -> Iterator[list[logging.LogRecord]]:
    """Every record of logger `name` at `level` or above, whatever propagation and levels
    earlier tests or `python-est` commands left behind."""
    logger = logging.getLogger(name)
    handler, saved = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def require_tool(name: str) -> str:
    """The path of an external tool; skip without it (a failure under CI=true)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/install-system-deps installs it)")
    return path


def wait_until(
    condition: Callable[[], bool], what: str = "the condition holds", timeout: float = 10.0
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def run_openssl(*args: str) -> subprocess.CompletedProcess[str]:
    """`openssl ARGS...` to completion, text output, whatever its exit status."""
    return subprocess.run(
        [require_tool("openssl"), *args], capture_output=True, text=True, timeout=60, check=False
    )


# The one skip policy (DESIGN.md, Tests): `.ci/run` installs every tool, so under CI=true a
# skip means a missing install step and fails the run, wherever the skip came from (a
# `pytest.skip`, a skip mark, an `importorskip` at module level). xfail stays xfail.
_SKIPS_FAIL = os.environ.get("CI") == "true"


def _fail_instead(report: pytest.CollectReport | pytest.TestReport) -> None:
    if _SKIPS_FAIL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run everything: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_instead(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_instead(report)
    return report
