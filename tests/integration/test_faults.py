"""Faults: kill -9 under load, a full or read-only state disk, broken files at start, and a
corrupt user store on reload. Each shows that nothing issued is lost and that the server says
clearly what is wrong.

The disk tests mount a small ext4 file system on a loop device (root only); without that
they skip (a failure under CI=true, where they must run).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import est_harness as h
from est_harness import (
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    running_server,
    srp,
)

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password 1"
CONFIG = "[profile]\npassword_subjects = any\n"


def _enroll(port: int, cafile: Path, name: str = "device") -> h.Reply:
    raw = h.enroll_request(
        f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(name)[0]), h.basic(USER, PASSWORD)
    )
    return h.https(port, raw, context=h.client_context(cafile), timeout=30)


# --- kill -9 under load ---------------------------------------------------------------------


# With `[server] workers = N` (N > 1) the log names each worker's pid, "worker I started (pid
# P)", and every response as python_est.server[P]: ADDRESS TLS... "METHOD PATH" STATUS.
WORKER_STARTED = r"worker \d started \(pid (\d+)\)"
ENROLLED = re.compile(r"python_est\.server\[(\d+)\]: .*\"POST \S*/simpleenroll\" 200 ")


def _enrolling_pids(server: h.Daemon) -> set[int]:
    """The workers that logged a successful enrollment so far (none with one process)."""
    return {int(pid) for pid in ENROLLED.findall(server.log())}


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_under_load_then_restart_loses_nothing(tmp_path: Path, workers: int) -> None:
    # 16 clients keep enough enrollments in flight that records share transactions (group
    # commit); killed twice, mid-load each time, the second time right after WAL recovery.
    # With two workers both write to the one ledger, each grouping its own commits, and the
    # kill hits the main process and both workers at once.
    cfg = h.write_config(tmp_path, CONFIG, f"[server]\nworkers = {workers}\n")
    h.init_state(cfg, {USER: PASSWORD})
    cafile = tmp_path / "state" / "ca" / "ca.pem"
    received: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    for round_ in range(2):
        server = h.Daemon(cfg, logs=tmp_path / f"round-{round_}").start()
        serving: set[int] = set()  # one process logs no pid
        if workers > 1:
            started = "\n".join(server.wait_for(WORKER_STARTED, count=workers))
            serving = {int(pid) for pid in re.findall(WORKER_STARTED, started)}
        stop = threading.Event()
        cut_before = len(failures)

        def client(index: int, server: h.Daemon = server, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    reply = _enroll(server.port, cafile, f"load-{index}")
                except Exception as exc:  # the kill cuts requests in flight: expected
                    with lock:
                        failures.append(type(exc).__name__)
                    continue
                if reply.status == 200:
                    with lock:
                        received.extend(c.serial_number for c in reply.certificates())

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(16)]
        for thread in threads:
            thread.start()
        wanted = 40 * (round_ + 1)
        deadline = time.monotonic() + 30
        # Until every serving process has enrolled (which one accepts is the kernel's choice).
        while (
            len(received) < wanted or _enrolling_pids(server) != serving
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill9()  # mid-load, every process at once: requests are in flight
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
        server.stop()
        assert len(received) >= wanted, server.log_tail()
        assert _enrolling_pids(server) == serving, server.log_tail()
        # No process ran its shutdown code: the kill reached the workers too.
        assert not re.search(r"stopping$|: stopped$", server.log(), re.MULTILINE)
        assert len(failures) > cut_before, "the kill should have cut some requests in flight"

    # Restart on the same state (WAL recovery), and verify while it runs, as an operator would.
    with h.Daemon(cfg, logs=tmp_path / "again") as again:
        expect = tmp_path / "received.txt"
        expect.write_text("".join(f"{serial:X}\n" for serial in received))
        verify = h.run_cli(cfg, "ledger", "verify", "--expect", str(expect))
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "ledger OK" in verify.stdout
        assert f"all {len(received)} expected serial(s) present" in verify.stdout
        assert _enroll(again.port, cafile).status == 200
    in_ledger = set(h.ledger_serials(tmp_path / "state" / "ledger.sqlite3"))
    assert set(received) <= in_ledger
    # Unclaimed rows can only be requests cut in flight (plus the one enrolled after restart).
    assert len(in_ledger) - len(set(received)) <= len(failures) + 1


def test_ledger_verify_detects_a_certificate_not_signed_by_the_ca(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from python_est.ca import CertificateAuthority
    from python_est.keys import KeyType
    from python_est.ledger import IssuedCertificate, SqliteLedger
    from python_est.profile import IssuanceProfile

    cfg = h.write_config(tmp_path, CONFIG)
    h.init_state(cfg, {})
    foreign = CertificateAuthority.create(
        common_name="Foreign", key_type=KeyType.EC_P256, validity_days=30
    )
    csr, _ = make_csr("intruder", ec.generate_private_key(ec.SECP256R1()))
    cert = foreign.issue(csr, IssuanceProfile())
    with SqliteLedger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        ledger.record(
            IssuedCertificate.from_certificate(
                cert, requester="x", auth_method="admin", label="", operation="init"
            )
        )
    verify = h.run_cli(cfg, "ledger", "verify")
    assert verify.returncode == 1
    assert "not signed by the CA" in verify.stdout
    missing = tmp_path / "missing.txt"
    missing.write_text("0A1B\n")
    verify = h.run_cli(cfg, "ledger", "verify", "--expect", str(missing))
    assert "0A1B: expected but not recorded" in verify.stdout


# --- a full or read-only state disk ---------------------------------------------------------


# The mount point's name, and beside it the pid of the test process that mounted it: a run
# killed before its teardown (SIGKILL, a lost terminal) leaves a mounted loop device behind
# under pytest's temporary directory, and the next run unmounts it. Disks of a run that is
# still going (another checkout's) are left alone.
DISK, OWNER = "est-test-disk", "est-test-disk.pid"


def _unmount_orphaned_disks() -> None:
    for line in Path("/proc/mounts").read_text().splitlines():
        mountpoint = Path(line.split()[1])
        if mountpoint.name != DISK:
            continue
        try:
            pid = int((mountpoint.parent / OWNER).read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            _unmount(mountpoint)
        except (OSError, ValueError):
            continue  # not ours to judge, or its owner is alive


def _unmount(mountpoint: Path) -> None:
    # Lazy: detached even while a file there is still open (a server thread that has not let
    # go yet); `mount -o loop` frees the loop device with the last reference.
    subprocess.run(["umount", "--lazy", str(mountpoint)], capture_output=True, check=False)


def _small_ext4(tmp_path: Path) -> Iterator[Path]:
    image, mount = tmp_path / "disk.img", tmp_path / DISK
    mount.mkdir()
    problem = ""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        problem = "needs root and mkfs.ext4"
    else:
        _unmount_orphaned_disks()
        (tmp_path / OWNER).write_text(str(os.getpid()))
        with open(image, "wb") as handle:
            handle.truncate(8 * 1024 * 1024)
        made = subprocess.run(
            ["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True, check=False
        )
        mounted = subprocess.run(
            ["mount", "-o", "loop,errors=remount-ro", str(image), str(mount)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode or mounted.returncode:
            problem = f"cannot mount a loop device: {(made.stderr + mounted.stderr).strip()}"
    if problem:
        pytest.skip(problem)
    try:
        yield mount
    finally:
        _unmount(mount)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB ext4 file system (errors=remount-ro) mounted from a loop device."""
    yield from _small_ext4(tmp_path)


def _basic_enroll(server: RunningServer) -> h.Reply:
    csr, _ = make_csr("device")
    raw = build_request(
        "POST",
        "/.well-known/est/simpleenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)},
        server.port,
    )
    return https(server.port, raw, cafile=server.ca_file)


def _cacerts_status(server: RunningServer) -> int:
    raw = build_request("GET", "/.well-known/est/cacerts", port=server.port)
    return https(server.port, raw, cafile=server.ca_file).status


def _assert_unavailable(reply: h.Reply) -> None:
    assert reply.status == 503, reply
    assert reply.headers.get("Retry-After", "").isdigit()
    assert b"-----BEGIN" not in reply.body and b"MII" not in reply.body  # no certificate


def test_full_disk_gives_503_and_nothing_unrecorded(small_disk: Path) -> None:
    with running_server(small_disk, CONFIG) as server:
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD, group_bits=2048)
        assert _basic_enroll(server).status == 200
        filler = small_disk / "filler"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        # SQLite reuses the space its WAL already has, so the first few may still commit (and
        # are then on disk); once the WAL must grow, enrollments get 503.
        issued = 1
        for _ in range(60):
            reply = _basic_enroll(server)
            if reply.status != 200:
                break
            issued += 1
        _assert_unavailable(reply)
        assert _cacerts_status(server) == 200
        assert server.state.ledger.count() == issued  # every 200 recorded, no 503 recorded
        filler.unlink()
        assert _basic_enroll(server).status == 200  # recovers once there is space again
        assert server.state.ledger.count() == issued + 1


def test_read_only_disk_gives_503_and_cacerts_keeps_working(small_disk: Path) -> None:
    device = next(
        line.split()[0]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1] == str(small_disk)
    )
    trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip("this kernel has no ext4 trigger_fs_error")
    with running_server(small_disk, CONFIG) as server:
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD, group_bits=2048)
        assert _basic_enroll(server).status == 200
        # What ext4 does on a disk error with errors=remount-ro: the file system turns
        # read-only under the running server, open files included.
        trigger.write_text("python-est reliability test\n")
        _assert_unavailable(_basic_enroll(server))
        _assert_unavailable(_basic_enroll(server))
        assert _cacerts_status(server) == 200
        assert server.state.ledger.count() == 1


# --- broken files at start ------------------------------------------------------------------


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("initialised")
    cfg = h.write_config(root, CONFIG)
    h.init_state(cfg, {USER: PASSWORD})
    return root


def _break_directory(path: Path) -> None:
    # Root reads any file whatever its mode, so "unreadable" is a directory in its place.
    path.unlink()
    path.mkdir()


BREAKAGES: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "ca key missing": ("ca/ca.key", Path.unlink, "ca.key is missing; restore it from a backup"),
    "ca key unreadable": ("ca/ca.key", _break_directory, "cannot read"),
    "ca key corrupt": ("ca/ca.key", lambda p: p.write_text("garbage"), "unusable CA"),
    "tls key missing": ("tls/server.key", Path.unlink, "server.key does not exist"),
    "tls key unreadable": ("tls/server.key", _break_directory, "cannot read"),
    "tls key corrupt": ("tls/server.key", lambda p: p.write_text("x"), "no usable private key"),
    "user store missing": ("users.srp", Path.unlink, "users.srp does not exist"),
    "user store unreadable": ("users.srp", _break_directory, "cannot read the user store"),
    "user store corrupt": ("users.srp", lambda p: p.write_text("{"), "not valid JSON"),
    "ledger missing": ("ledger.sqlite3", Path.unlink, "ledger.sqlite3 does not exist"),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_broken_file_at_start_exits_2_with_one_line(
    case: str, initialised: Path, tmp_path: Path
) -> None:
    shutil.copytree(initialised, tmp_path, dirs_exist_ok=True)
    relative, breakage, expected = BREAKAGES[case]
    breakage(tmp_path / "state" / relative)
    done = h.run_cli(tmp_path / "est.cfg", timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("python-est: ") and expected in lines[0]
    assert "listening" not in done.stdout


# --- a corrupt user store on reload ---------------------------------------------------------


def test_corrupt_user_store_keeps_the_old_users(
    start_est_server: Callable[[str], RunningServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_est_server(CONFIG)
    store = server.state.users
    assert store is not None
    store.add(USER, PASSWORD, group_bits=2048)
    assert _basic_enroll(server).status == 200
    path = server.config.srp.user_db
    path.write_text('{"format": "python-est-users", "users": ')  # a half-written file
    # The store looks at the file on every lookup (state's UserStore: reload_interval 0).
    with caplog.at_level("WARNING", logger="python_est"):
        assert _basic_enroll(server).status == 200
        get = build_request("GET", "/.well-known/est/cacerts", port=server.port)
        assert srp(server.port, USER, PASSWORD, get).status == 200
    assert any("keeping the previous users" in r.getMessage() for r in caplog.records)


def test_corrupt_user_store_on_sighup_keeps_serving(tmp_path: Path) -> None:
    cfg = h.write_config(tmp_path, CONFIG)
    h.init_state(cfg, {USER: PASSWORD})
    cafile = tmp_path / "state" / "ca" / "ca.pem"
    with h.Daemon(cfg) as server:
        (tmp_path / "state" / "users.srp").write_text("not json")
        os.kill(server.pid, signal.SIGHUP)
        server.wait_for("reload refused", timeout=20)
        assert server.alive()
        assert _enroll(server.port, cafile).status == 200
