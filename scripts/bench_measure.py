"""The benchmark's measurements of a server process, and the independent generator's cells.

The server's CPU (user, system), the time its threads spent waiting for a CPU and their context
switches, for the process and all its descendants (`workers = N` counts every worker), from
/proc; and a `Cell` from one run of `scripts/bench_ssl_clients.py`. Used by `scripts/bench.py`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_report import Cell

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) of `pid` and all its live descendants."""
    user = system = 0.0
    for process in _tree(pid):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        user, system = user + int(fields[11]) / TICK, system + int(fields[12]) / TICK
    return user, system


def tree_threads(pid: int) -> tuple[float, int]:
    """Of the threads of `pid` and its descendants: the seconds they spent runnable, waiting
    for a CPU, and their context switches (voluntary and not)."""
    waited = switches = 0
    for process in _tree(pid):
        try:
            tasks = os.listdir(f"/proc/{process}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                waited += int(Path(f"/proc/{process}/task/{task}/schedstat").read_text().split()[1])
                status = Path(f"/proc/{process}/task/{task}/status").read_text()
            except (OSError, IndexError, ValueError):
                continue  # exited meanwhile, or no schedstat in this kernel
            switches += sum(
                int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
            )
    return waited / 1e9, switches


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            children.setdefault(int(parent), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


# User and system CPU seconds, runqueue wait seconds, context switches.
Sample = tuple[float, float, float, int] | None


def sample(pid: int | None) -> Sample:
    """The figures of server `pid` now; None without a pid (CPU not measured)."""
    if not pid:
        return None
    return (*tree_cpu(pid), *tree_threads(pid))


def difference(
    before: Sample, after: Sample, seconds: float
) -> tuple[tuple[float, float] | None, float, int]:
    """(user, system) CPU seconds, runqueue waits per second and context switches."""
    if before is None or after is None:
        return None, math.nan, 0
    cpu = (after[0] - before[0], after[1] - before[1])
    return cpu, (after[2] - before[2]) / seconds, after[3] - before[3]


def independent_cell(
    key: tuple[str, int, str], pid: int | None, options: list[str], seconds: float
) -> Cell:
    """Run `scripts/bench_ssl_clients.py` with `options`; sample the server `pid` when the
    generator says its window opens and closes; one cell (server, workers, scenario)."""
    command = [sys.executable, str(Path(__file__).with_name("bench_ssl_clients.py")), *options]
    before = after = None
    summary: dict[str, Any] = {}
    began = ended = 0.0
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as generator:
        assert generator.stdout is not None
        for line in generator.stdout:
            if line.startswith("window start"):
                began, before = time.monotonic(), sample(pid)
            elif line.startswith("window end"):
                ended, after = time.monotonic(), sample(pid)
            elif line.startswith("{"):
                summary = json.loads(line)
    if not summary:
        raise SystemExit(f"the independent generator failed: {' '.join(command)}")
    cpu, runq, switches = difference(before, after, ended - began)
    requests = int(summary["requests"])
    errors = Counter({str(kind): int(count) for kind, count in summary["errors"].items()})
    attempts = max(1, requests + sum(errors.values()))
    user, system = cpu if cpu is not None else (math.nan, math.nan)

    def ms(name: str) -> float:
        value = summary[name]
        return math.nan if value is None else float(value)

    return Cell(
        *key,
        False,
        rate=requests / seconds,
        count=requests,
        p50=ms("p50"),
        p90=ms("p90"),
        p99=ms("p99"),
        errors=errors,
        server_cpu=(user + system) / attempts * 1000,
        server_sys=system / (user + system) if user + system else math.nan,
        client_cpu=ms("cpu") / attempts * 1000,
        server_runq=runq,
        server_switches=switches / attempts if cpu is not None else math.nan,
        generator="independent",
    )
