"""config/python-est.service: every directive the deployment relies on, checked by systemd too.

The parser test always runs. `systemd-analyze verify` and `systemd-analyze security --offline`
run when systemd-analyze is installed (scripts/install-system-deps installs it; under CI=true a
missing tool fails). ExecStart is pointed at a stand-in executable for them, since
/opt/python-est does not exist on a build machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from python_est.config import default_config
from tests.conftest import require_tool

UNIT = Path(__file__).resolve().parents[2] / "config" / "python-est.service"
EXEC = "/opt/python-est/venv/bin/python-est"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, equals, value = line.partition("=")
        assert equals and current is not None, f"line {number} is not key=value: {raw!r}"
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used"
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for name, value in unit[section] if name == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("User", "python-est"),
        ("Group", "python-est"),
        ("StateDirectory", "python-est"),
        ("ConfigurationDirectory", "python-est"),
        ("WorkingDirectory", "/var/lib/python-est"),
        ("ExecStart", f"{EXEC} -c /etc/python-est/python_est.cfg"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillMode", "mixed"),
        ("Restart", "on-failure"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
    ],
)
def test_service_directive(unit: dict[str, list[tuple[str, str]]], key: str, expected: str) -> None:
    assert one(unit, "Service", key) == expected


def test_system_calls_are_filtered(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert values(unit, "Service", "SystemCallFilter") == [
        "@system-service",
        "~@privileged @resources",
    ]
    assert one(unit, "Service", "SystemCallErrorNumber") == "EPERM"


def test_stop_timeout_leaves_room_for_the_drain(unit: dict[str, list[tuple[str, str]]]) -> None:
    # systemd sends SIGKILL at TimeoutStopSec; the drain must end well before that.
    timeout = one(unit, "Service", "TimeoutStopSec")
    assert timeout.isdigit() and int(timeout) > default_config(Path.cwd()).server.shutdown_grace


def test_unit_starts_after_the_network_and_installs_for_boot(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    assert one(unit, "Unit", "After") == "network-online.target"
    assert one(unit, "Unit", "Wants") == "network-online.target"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here."""
    stand_in = tmp_path / "python-est"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    path = tmp_path / "python-est.service"
    path.write_text(UNIT.read_text().replace(EXEC, str(stand_in)))
    return path


def test_systemd_analyze_verify_passes(checkable_unit: Path) -> None:
    tool = require_tool("systemd-analyze")
    done = subprocess.run(
        [tool, "verify", "--man=no", str(checkable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 even after warnings such as an unknown or unparsable directive.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_systemd_analyze_security_rates_the_unit_well(checkable_unit: Path) -> None:
    tool = require_tool("systemd-analyze")
    done = subprocess.run(
        [tool, "security", "--offline=true", "--threshold=15", str(checkable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
