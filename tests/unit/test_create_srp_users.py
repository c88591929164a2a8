"""scripts/create_srp_users.py: setup, add and list on a real store file."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from types import ModuleType

import pytest

from python_est.users import UserStore

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "create_srp_users.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("create_srp_users", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_setup_creates_an_empty_store_once(tool: ModuleType, tmp_path: Path) -> None:
    db = tmp_path / "users.srp"
    assert tool.main(["setup", "--db", str(db)]) == 0
    assert UserStore(db).list_users() == []
    assert tool.main(["setup", "--db", str(db)]) == 1


def test_setup_demo_prints_working_passwords(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "users.srp"
    assert tool.main(["setup", "--demo", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    pairs = dict(line.split("\t") for line in lines)
    assert sorted(pairs) == ["python-est-demo-1", "python-est-demo-2"]
    store = UserStore(db)
    assert all(store.check_password(user, pw) for user, pw in pairs.items())
    assert len(set(pairs.values())) == 2 and all(len(pw) >= 16 for pw in pairs.values())


def test_add_reads_the_password_from_stdin(
    tool: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "users.srp"
    tool.main(["setup", "--db", str(db)])
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert tool.main(["add", "alice", "--password-stdin", "--db", str(db)]) == 0
    assert UserStore(db).check_password("alice", "from stdin")


def test_password_argument_works_but_warns(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "users.srp"
    tool.main(["setup", "--db", str(db)])
    assert tool.main(["add", "--db", str(db), "bob", "on-the-command-line"]) == 0
    assert "shell history" in capsys.readouterr().err
    assert UserStore(db).check_password("bob", "on-the-command-line")
    assert tool.main(["add", "--db", str(db), "bob", "again-and-again"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert tool.main(["list", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "bob\tbob\n"


def test_errors_exit_1_with_a_message(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main(["list", "--db", str(tmp_path / "missing.srp")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["frobnicate"])
    assert exit_info.value.code == 2


def test_create_and_add_use_the_store_the_config_names(
    tool: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nstate_dir = var\n[srp]\nmin_password_length = 10\n")
    assert tool.main(["create", "-c", str(cfg)]) == 0
    db = tmp_path / "var" / "users.srp"
    assert UserStore(db).list_users() == []
    monkeypatch.setattr("sys.stdin", io.StringIO("too short\n"))
    assert tool.main(["add", "-c", str(cfg), "carol", "--password-stdin"]) == 1
    assert "at least 10 are required" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough now\n"))
    assert tool.main(["add", "-c", str(cfg), "carol", "--password-stdin"]) == 0
    assert UserStore(db).check_password("carol", "long enough now")
    assert tool.main(["list", "-c", str(cfg)]) == 0
    assert capsys.readouterr().out == "carol\tcarol\n"


def test_every_script_is_executable() -> None:
    for script in SCRIPT.parent.glob("*.py"):
        if '__name__ == "__main__"' not in script.read_text():
            continue  # a module the scripts share (est_harness, bench_load, bench_report)
        assert script.stat().st_mode & 0o111 == 0o111, f"{script.name} is not executable"
        assert script.read_text().startswith("#!/usr/bin/env python3\n"), script.name
