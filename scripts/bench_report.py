"""The benchmark's figures: one `Cell` per (server, workers, scenario, mode), tables, targets.

Used by `scripts/bench.py`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence

from bench_load import SRP_SCENARIOS, Result


@dataclasses.dataclass(frozen=True)
class Cell:
    """One measured cell; the rates and CPU figures are per completed request."""

    server: str  # "tlslite" or "openssl"
    workers: int
    scenario: str
    resume: bool
    rate: float
    count: int
    p50: float  # milliseconds
    p90: float
    p99: float
    errors: Counter[str]
    server_cpu: float  # ms per request (completed or failed), server process and children
    server_sys: float  # the kernel's share of server_cpu, 0..1
    client_cpu: float  # ms per request, all generator processes and their curl children

    @property
    def key(self) -> tuple[str, int, str, bool]:
        return self.server, self.workers, self.scenario, self.resume

    @property
    def server_cores(self) -> float:
        """CPUs the server kept busy: its CPU seconds per wall second."""
        return self.rate * self.server_cpu / 1000

    @property
    def mode(self) -> str:
        return "resumed" if self.resume else "full"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile of `values` (seconds), in milliseconds; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def make_cell(
    key: tuple[str, int, str, bool],
    results: Sequence[Result],
    seconds: float,
    server_cpu: tuple[float, float] | None,
) -> Cell:
    """Combine the generator processes' results and the server's (user, system) CPU seconds."""
    latencies = [x for r in results for x in r.latencies]
    errors: Counter[str] = sum((r.errors for r in results), Counter())
    attempts = max(1, len(latencies) + sum(errors.values()))
    user, system = server_cpu if server_cpu is not None else (math.nan, math.nan)
    return Cell(
        *key,
        rate=len(latencies) / seconds,
        count=len(latencies),
        p50=percentile(latencies, 0.50),
        p90=percentile(latencies, 0.90),
        p99=percentile(latencies, 0.99),
        errors=errors,
        server_cpu=(user + system) / attempts * 1000,
        server_sys=system / (user + system) if user + system else math.nan,
        client_cpu=sum(r.cpu for r in results) / attempts * 1000,
    )


def best(cells: Sequence[Cell]) -> list[Cell]:
    """Per key, the round with the highest rate (the least disturbed by other load)."""
    chosen: dict[tuple[str, int, str, bool], Cell] = {}
    for cell in cells:
        if cell.key not in chosen or cell.rate > chosen[cell.key].rate:
            chosen[cell.key] = cell
    return list(chosen.values())


HEADER = (
    f"{'server':8} {'w':>2} {'scenario':13} {'mode':8} {'req/s':>8} {'p50':>7} {'p90':>7} "
    f"{'p99':>7} {'srv ms/r':>9} {'sys':>4}% {'cores':>5} {'gen ms/r':>9}  errors"
)


def row(cell: Cell) -> str:
    errors = ", ".join(f"{k} x{v}" for k, v in cell.errors.most_common()) or "-"
    return (
        f"{cell.server:8} {cell.workers:>2} {cell.scenario:13} {cell.mode:8} {cell.rate:8.1f} "
        f"{cell.p50:7.1f} {cell.p90:7.1f} {cell.p99:7.1f} {cell.server_cpu:9.2f} "
        f"{cell.server_sys * 100:4.0f}% {cell.server_cores:5.2f} {cell.client_cpu:9.2f}  {errors}"
    )


def _ratio(ours: float, theirs: float) -> str:
    if not theirs or math.isnan(ours) or math.isnan(theirs):
        return "   n/a"
    return f"{ours / theirs:6.2f}"


def ratios(cells: Sequence[Cell]) -> list[str]:
    """tlslite / OpenSSL for every figure of every scenario measured on both (workers = 1)."""
    ours = {(c.scenario, c.mode): c for c in cells if c.server == "tlslite" and c.workers == 1}
    theirs = {(c.scenario, c.mode): c for c in cells if c.server == "openssl"}
    lines = [f"{'scenario':13} {'mode':8} {'req/s':>6} {'p50':>6} {'p90':>6} {'p99':>6} srv cpu"]
    for (scenario, mode), a in ours.items():
        b = theirs.get((scenario, mode))
        if b is None:
            why = "Python ssl has no TLS-SRP" if scenario in SRP_SCENARIOS else "not run"
            lines.append(f"{scenario:13} {mode:8}    n/a ({why})")
            continue
        lines.append(
            f"{scenario:13} {mode:8} {_ratio(a.rate, b.rate)} {_ratio(a.p50, b.p50)} "
            f"{_ratio(a.p90, b.p90)} {_ratio(a.p99, b.p99)} {_ratio(a.server_cpu, b.server_cpu)}"
        )
    return lines


def targets(cells: Sequence[Cell]) -> list[str]:
    """Issue 8's targets, each with its figure from this run (docs/performance.md)."""
    ours = {(c.scenario, c.mode): c for c in cells if c.server == "tlslite" and c.workers == 1}
    theirs = {(c.scenario, c.mode): c for c in cells if c.server == "openssl"}
    lines = []

    def check(name: str, value: float | None, limit: float, unit: str, at_most: bool) -> None:
        if value is None or math.isnan(value):
            lines.append(f"  {name:44} not measured in this run")
            return
        met = value <= limit if at_most else value >= limit
        sign = "<=" if at_most else ">="
        lines.append(
            f"  {name:44} {value:6.2f}{unit} ({sign} {limit}{unit}: {'met' if met else 'MISSED'})"
        )

    def cpu(scenario: str, mode: str = "full") -> float | None:
        cell = ours.get((scenario, mode))
        return None if cell is None else cell.server_cpu

    def rate(table: dict[tuple[str, str], Cell]) -> float | None:
        cell = table.get(("enroll-basic", "full"))
        return None if cell is None else cell.rate

    check("full TLS 1.2 ECDHE handshake, server CPU", cpu("handshake"), 2.5, " ms", True)
    check("resumed handshake, server CPU", cpu("handshake", "resumed"), 1.0, " ms", True)
    check("SRP handshake + GET /cacerts, server CPU", cpu("cacerts-srp"), 4.0, " ms", True)
    check("Basic-auth enrollment, server CPU", cpu("enroll-basic"), 4.0, " ms", True)
    a, b = rate(ours), rate(theirs)
    check("enrollments/s, tlslite / OpenSSL", a / b if a and b else None, 0.5, "", False)
    scaled = {
        c.workers: c.rate
        for c in cells
        if c.server == "tlslite" and (c.scenario, c.mode) == ("enroll-basic", "full")
    }
    two = scaled[2] / scaled[1] if scaled.get(1) and 2 in scaled else None
    check("enrollments/s, workers = 2 / workers = 1", two, 1.5, "x", False)
    return lines
