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

    server: str  # "tlslite", "tlslite-p256", "tlslite-compiled" or "openssl"
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
    # Thread-seconds per second the server's threads were runnable but waited for a CPU
    # (/proc schedstat): the machine's share of the idle core, not the server's own waits.
    server_runq: float = math.nan
    server_switches: float = math.nan  # the server threads' context switches per request
    generator: str = "bench"  # "bench" (bench_load) or "independent" (bench_ssl_clients)

    @property
    def key(self) -> tuple[str, int, str, bool, str]:
        return self.server, self.workers, self.scenario, self.resume, self.generator

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
    runq: float = math.nan,
    switches: int = 0,
    generator: str = "bench",
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
        server_runq=runq,
        server_switches=switches / attempts if server_cpu is not None else math.nan,
        generator=generator,
    )


def best(cells: Sequence[Cell]) -> list[Cell]:
    """Per key, the round with the highest rate (the least disturbed by other load)."""
    chosen: dict[tuple[str, int, str, bool, str], Cell] = {}
    for cell in cells:
        if cell.key not in chosen or cell.rate > chosen[cell.key].rate:
            chosen[cell.key] = cell
    return list(chosen.values())


HEADER = (
    f"{'server':16} {'w':>2} {'scenario':13} {'mode':8} {'gen':5} {'req/s':>7} {'p50':>6} "
    f"{'p90':>6} {'p99':>6} {'srv ms/r':>8} {'sys':>3}% {'cores':>5} {'runq':>5} "
    f"{'cs/r':>5} {'gen ms/r':>8}  errors"
)


def row(cell: Cell) -> str:
    errors = ", ".join(f"{k} x{v}" for k, v in cell.errors.most_common()) or "-"
    generator = "own" if cell.generator == "bench" else "indep"
    return (
        f"{cell.server:16} {cell.workers:>2} {cell.scenario:13} {cell.mode:8} {generator:5} "
        f"{cell.rate:7.1f} {cell.p50:6.1f} {cell.p90:6.1f} {cell.p99:6.1f} "
        f"{cell.server_cpu:8.2f} {cell.server_sys * 100:3.0f}% {cell.server_cores:5.2f} "
        f"{cell.server_runq:5.2f} {cell.server_switches:5.1f} {cell.client_cpu:8.2f}  {errors}"
    )


def _ratio(ours: float, theirs: float) -> str:
    if not theirs or math.isnan(ours) or math.isnan(theirs):
        return "   n/a"
    return f"{ours / theirs:6.2f}"


def ratios(cells: Sequence[Cell], generator: str = "bench", server: str = "tlslite") -> list[str]:
    """`server` / OpenSSL for every figure of every scenario measured on both (workers = 1)."""
    cells = [c for c in cells if c.generator == generator]
    ours = {(c.scenario, c.mode): c for c in cells if c.server == server and c.workers == 1}
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


def _verdict(name: str, value: float | None, limit: float, unit: str, at_most: bool) -> str:
    """One target's line: its figure from this run and whether it is met."""
    if value is None or math.isnan(value):
        return f"  {name} not measured in this run"
    met = value <= limit if at_most else value >= limit
    sign = "<=" if at_most else ">="
    return f"  {name} {value:6.2f}{unit} ({sign} {limit}{unit}: {'met' if met else 'MISSED'})"


def targets(cells: Sequence[Cell]) -> list[str]:
    """Issue 8's targets, each with its figure from this run (docs/performance.md)."""
    cells = [c for c in cells if c.generator == "bench"]
    ours = {(c.scenario, c.mode): c for c in cells if c.server == "tlslite" and c.workers == 1}
    theirs = {(c.scenario, c.mode): c for c in cells if c.server == "openssl"}
    lines: list[str] = []

    def check(name: str, value: float | None, limit: float, unit: str, at_most: bool) -> None:
        lines.append(_verdict(f"{name:44}", value, limit, unit, at_most))

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


def issue20_targets(cells: Sequence[Cell]) -> list[str]:
    """Issue 20's targets (items 1, 3, 4), each with its figure from this run."""
    cells = [c for c in cells if c.generator == "bench" and c.workers == 1]
    table = {(c.server, c.scenario, c.mode): c for c in cells}
    lines: list[str] = []

    def check(name: str, value: float | None, limit: float, unit: str, at_most: bool) -> None:
        lines.append(_verdict(f"{name:52}", value, limit, unit, at_most))

    def cpu(server: str, scenario: str, mode: str = "full") -> float | None:
        cell = table.get((server, scenario, mode))
        return None if cell is None else cell.server_cpu

    def over(server: str, mode: str) -> float | None:
        a, b = cpu(server, "handshake", mode), cpu("openssl", "handshake", mode)
        return a / b if a and b else None

    enroll = table.get(("tlslite", "enroll-basic", "full"))
    cores = None if enroll is None else enroll.server_cores
    check("1: cores busy during enroll-basic", cores, 0.95, "", False)
    for server in sorted({c.server for c in cells} - {"openssl", "tlslite-p256"}):
        check(f"3: full handshake CPU, {server} / OpenSSL", over(server, "full"), 1.5, "x", True)
        check(
            f"3: resumed handshake CPU, {server} / OpenSSL", over(server, "resumed"), 2, "x", True
        )
    check("4: enrollment CPU, RSA-3072 CA", cpu("tlslite", "enroll-basic"), 3.0, " ms", True)
    check("4: enrollment CPU, P-256 CA", cpu("tlslite-p256", "enroll-basic"), 2.5, " ms", True)
    return lines


def _figure(cell: Cell | None, value: str) -> str:
    if cell is None:
        return f"{'-':>10}"
    number = {
        "rate": cell.rate,
        "cpu": cell.server_cpu,
        "cores": cell.server_cores,
        "runq": cell.server_runq,
        "switches": cell.server_switches,
    }[value]
    return f"{number:10.2f}" if value != "rate" else f"{number:10.0f}"


def issue_table(cells: Sequence[Cell], generator: str) -> list[str]:
    """Issue 20's table: /cacerts and enrollments, the OpenSSL baseline against python-est with
    an RSA and a P-256 CA, workers = 1, with one generator's figures."""
    by_key = {
        (c.server, c.scenario): c
        for c in cells
        if c.workers == 1 and not c.resume and c.generator == generator
    }
    columns = ("openssl", "tlslite", "tlslite-p256")
    rows = (
        ("GET /cacerts, requests/s", "cacerts", "rate"),
        ("server CPU per /cacerts, ms", "cacerts", "cpu"),
        ("simpleenroll, requests/s", "enroll-basic", "rate"),
        ("server CPU per enrollment, ms", "enroll-basic", "cpu"),
        ("server cores busy during enroll", "enroll-basic", "cores"),
        ("  threads waiting for a CPU", "enroll-basic", "runq"),
        ("  context switches per enrollment", "enroll-basic", "switches"),
    )
    lines = [f"{'':34}" + "".join(f"{name:>14}" for name in columns)]
    for title, scenario, value in rows:
        figures = "".join(f"{_figure(by_key.get((n, scenario)), value):>14}" for n in columns)
        lines.append(f"{title:34}{figures}")
    return lines


def scaling(cells: Sequence[Cell], generator: str) -> list[str]:
    """Enrollments/s and CPU per enrollment for each worker count against the baseline."""
    chosen = [
        c
        for c in cells
        if c.scenario == "enroll-basic" and not c.resume and c.generator == generator
    ]
    base = next((c for c in chosen if c.server == "openssl"), None)
    lines = []
    for cell in sorted(chosen, key=lambda c: (c.server != "openssl", c.server, c.workers)):
        versus = ""
        if base is not None and cell is not base:
            versus = (
                f"  = {_ratio(cell.rate, base.rate).strip()}x the baseline's rate, "
                f"{_ratio(cell.server_cpu, base.server_cpu).strip()}x its CPU"
            )
        lines.append(
            f"  {cell.server:16} workers = {cell.workers}: {cell.rate:6.0f}/s, "
            f"{cell.server_cpu:5.2f} ms CPU, {cell.server_cores:4.2f} cores{versus}"
        )
    return lines
