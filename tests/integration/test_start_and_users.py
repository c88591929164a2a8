"""Start-up refusals that name the key, and users added while the server runs."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from est_harness import RunningServer, basic, build_request, csr_body, https, make_csr, srp
from python_est.users import UserStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_port_in_use_exits_2_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "est.cfg"
        cfg.write_text(f"[server]\naddress = 127.0.0.1\nport = {port}\n[ca]\nkey_type = ec-p256\n")
        result = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "-c", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"python-est: {cfg}: [server] port: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )
    assert "Traceback" not in result.stderr
    # Reported before the first start created anything: no CA was made for a server that
    # never ran.
    assert sorted(tmp_path.iterdir()) == [cfg]


def test_a_user_added_by_another_process_logs_in_at_once(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = start_est_server("")
    # What `python-est user add` does: its own store object on the same file.
    UserStore(server.config.srp.user_db).add("late-user", "late user password")
    csr, _ = make_csr("late-user")
    body = csr_body(csr)
    headers = {"Content-Type": "application/pkcs10"}
    path = "/.well-known/est/simpleenroll"
    over_srp = srp(
        server.port,
        "late-user",
        "late user password",
        build_request("POST", path, body, headers, server.port),
    )
    assert over_srp.status == 200, over_srp.body
    with_basic = https(
        server.port,
        build_request(
            "POST",
            path,
            body,
            {**headers, "Authorization": basic("late-user", "late user password")},
            server.port,
        ),
        cafile=server.ca_file,
    )
    assert with_basic.status == 200, with_basic.body


def test_a_state_directory_deleted_under_the_server_stops_issuance(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = start_est_server("")
    UserStore(server.config.srp.user_db).add("dev-gone", "gone user password")
    ca_file = server.ca_file  # written outside the state directory

    def enroll() -> int:
        csr, _ = make_csr("dev-gone")
        headers = {
            "Content-Type": "application/pkcs10",
            "Authorization": basic("dev-gone", "gone user password"),
        }
        request = build_request(
            "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
        )
        return https(server.port, request, cafile=ca_file).status

    assert enroll() == 200  # the server has read the user
    shutil.rmtree(server.config.server.state_dir)
    # Issuing into the unlinked SQLite file would lose the record at exit: refused instead.
    assert enroll() == 500
    health = https(server.port, build_request("GET", "/healthz", port=server.port), cafile=ca_file)
    assert health.status == 503
    assert b"ledger" in health.body
    assert not server.config.server.state_dir.exists()


def test_banner_and_the_missing_server_name_warning(tmp_path: Path) -> None:
    from est_harness import daemon, prepare_state

    prepare_state(tmp_path)  # the server certificate is made without est.example.net
    with daemon(tmp_path, "[server]\nserver_names = est.example.net\n", notify=False) as running:
        out = running.out.read_text()
        assert f"EST base URL: https://127.0.0.1:{running.port}/.well-known/est" in out
        assert f"bootstrap page: https://127.0.0.1:{running.port}/bootstrap" in out
        assert "CA SHA-256 fingerprint: " in out
        running.wait_for(
            r"WARNING .*the server certificate lacks est\.example\.net of \[server\] "
            r"server_names.*init --server-cert`"
        )
        [command] = [line for line in out.splitlines() if "add a user: " in line]
        words = shlex.split(command.split("add a user: ", 1)[1].replace("NAME", "banner-user"))
        added = subprocess.run(
            [*words, "--password-stdin"],
            input="banner user password\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd="/",  # runnable from any folder
        )
        assert added.returncode == 0, added.stderr
        assert "added user 'banner-user'" in added.stdout
