"""The PostgreSQL plumbing that needs no server: URLs, their safe description, argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_est.cli import main

pytest.importorskip("psycopg")

from python_est.pgsql import Database, describe_url, is_database_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://est:s3cret@db.example:6432/est", "db.example:6432/est"),
        ("postgres://est@10.0.0.5/ledger?sslmode=verify-full", "10.0.0.5:5432/ledger"),
        ("postgresql:///est", "localhost:5432/est"),
    ],
)
def test_describe_url_never_shows_user_or_password(url: str, expected: str) -> None:
    assert is_database_url(url)
    assert describe_url(url) == expected
    assert "s3cret" not in Database(url).name


@pytest.mark.parametrize("url", ["mysql://db/est", "sqlite:///x", "db.example:5432"])
def test_only_postgresql_urls_are_accepted(url: str) -> None:
    assert not is_database_url(url)
    with pytest.raises(ValueError, match="postgresql://"):
        Database(url)


def test_the_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="pool_size"):
        Database("postgresql://est@127.0.0.1/est", pool_size=0)


def test_moving_users_from_the_file_needs_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nstate_dir = state\n")
    assert main(["-c", str(cfg), "user", "import", "file", str(tmp_path / "users.srp")]) == 1
    assert "set [ledger] url first" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # refused before touching any state
