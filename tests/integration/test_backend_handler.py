"""The `handler` backend (issue 18 item 1): an est_proxy-style CAhandler, written here after
est_proxy's documented skeleton, that signs with a CA run by the openssl CLI (in the test only;
the product never runs openssl). Configured the legacy way, `[CAhandler] handler_file`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from est_harness import (
    Reply,
    RunningServer,
    basic,
    build_request,
    daemon,
    https,
    prepare_state,
    running_server,
)
from python_est import wire
from python_est.backends.handler import fingerprint
from python_est.cli import main
from python_est.errors import ConfigError
from python_est.ledger import serial_hex
from tests.conftest import require_tool
from tests.policy_support import EST, PASSWORD, cn, der_csr, held_id, post, refused

pytestmark = [pytest.mark.integration, pytest.mark.interop]

WORKER_STARTED = r"worker (\d) started \(pid (\d+)\)"

# est_proxy's skeleton (docs/ca_handler.md there): __init__(debug, logger), a context manager
# that loads its config in __enter__ through est_proxy.helper.config_load, ca_certs_get,
# enroll -> (error, certificate, poll_identifier), poll -> (error, certificate,
# poll_identifier, rejected); revoke as acme2certifier's -> (code, message, detail).
HANDLER = '''\
""" CA handler signing with the openssl CLI """
import os
import os
import re
import signal
import subprocess
import time
import uuid

from est_proxy.helper import config_load


class CAhandler(object):
    """ EST CA handler """

    def __init__(self, _debug=None, logger=None):
        self.logger = logger
        self.ca_dir = None

    def __enter__(self):
        """ Makes CAhandler a Context Manager """
        if not self.ca_dir:
            self._config_load()
        return self

    def __exit__(self, *args):
        """ close the connection at the end of the context """

    def _config_load(self):
        self.logger.debug("CAhandler._config_load()")
        config_dic = config_load(self.logger, "CAhandler")
        self.ca_dir = config_dic["CAhandler"]["ca_dir"]
        self.openssl = config_dic["CAhandler"]["openssl_bin"]

    def _path(self, *names):
        return os.path.join(self.ca_dir, *names)

    def _sign(self, csr):
        name = uuid.uuid4().hex
        with open(self._path(name + ".csr"), "w") as fso:
            fso.write("-----BEGIN CERTIFICATE REQUEST-----\\n" + csr)
            fso.write("\\n-----END CERTIFICATE REQUEST-----\\n")
        result = subprocess.run(
            [self.openssl, "x509", "-req", "-in", self._path(name + ".csr"),
             "-CA", self._path("ca.pem"), "-CAkey", self._path("ca.key"), "-days", "30",
             "-set_serial", "0x" + uuid.uuid4().hex, "-copy_extensions", "copy",
             "-out", self._path(name + ".pem")],
            capture_output=True, timeout=30,
        )
        if result.returncode:
            return (result.stderr.decode(errors="replace"), None, None)
        with open(self._path(name + ".pem")) as fso:
            return (None, fso.read(), None)

    def ca_certs_get(self):
        self.logger.debug("CAhandler.ca_certs_get()")
        with open(self._path("ca.pem")) as fso:
            return fso.read()

    def enroll(self, csr):
        self.logger.debug("CAhandler.enroll()")
        if os.path.exists(self._path("hold")):
            poll_identifier = uuid.uuid4().hex
            with open(self._path(poll_identifier + ".held"), "w") as fso:
                fso.write(csr)
            return (None, None, poll_identifier)
        return self._sign(csr)

    def poll(self, poll_identifier, csr):
        self.logger.debug("CAhandler.poll()")
        if os.path.exists(self._path(poll_identifier + ".rejected")):
            return ("rejected by the CA officer", None, poll_identifier, True)
        if not os.path.exists(self._path(poll_identifier + ".approved")):
            return (None, None, poll_identifier, False)
        with open(self._path(poll_identifier + ".held")) as fso:
            error, certificate, _ = self._sign(fso.read())
        return (error, certificate, poll_identifier, False)

    def revoke(self, cert, rev_reason="unspecified", rev_date=None):
        with open(self._path("revoked.txt"), "a") as fso:
            fso.write(rev_reason + "\\n")
        return (200, None, None)
'''


def openssl_ca(directory: Path) -> Path:
    openssl = require_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(directory / "ca.key"),
            "-out",
            str(directory / "ca.pem"),
            "-subj",
            "/CN=OpenSSL CLI Test CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory


def handler_cfg(tmp_path: Path) -> str:
    ca_dir = openssl_ca(tmp_path / "openssl-ca")
    handler = tmp_path / "ca_handler.py"
    handler.write_text(HANDLER)
    return (
        f"[CAhandler]\nhandler_file = {handler}\nca_dir = {ca_dir}\n"
        f"openssl_bin = {require_tool('openssl')}\n"
        "[profile]\npassword_subjects = own\n"
    )


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer], tmp_path: Path) -> RunningServer:
    running = start_est_server(handler_cfg(tmp_path))
    assert running.state.users is not None
    running.state.users.add("device1", PASSWORD)
    return running


def ca_dir(server: RunningServer) -> Path:
    return Path(dict(server.config.labels[""].handler_options)["ca_dir"])


def test_legacy_handler_file_runs_cacerts_and_enroll(server: RunningServer) -> None:
    assert server.config.labels[""].backend == "handler"
    assert not [w for w in server.config.warnings if "handler_file" in w]
    raw = build_request("GET", f"{EST}/cacerts", b"", {}, server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200
    [root] = wire.decode_certs_only(reply.body)
    assert root.subject.rfc4514_string() == "CN=OpenSSL CLI Test CA"

    der, key = der_csr(cn("device1"))
    enrolled = post(server, "simpleenroll", der, user="device1")
    assert enrolled.status == 200, enrolled.body
    [cert] = enrolled.certificates()
    cert.verify_directly_issued_by(root)
    assert cert.public_key() == key.public_key()
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.requester == "device1"


def test_serverkeygen_certifies_a_key_made_here(server: RunningServer) -> None:
    der, _ = der_csr(cn("device1"))
    reply = post(server, "serverkeygen", der, user="device1")
    assert reply.status == 200, reply.body
    parts = wire.parse_multipart(reply.headers["Content-Type"], reply.body)
    assert len(parts) == 2
    [entry] = server.state.ledger.list_certificates(limit=5)
    assert entry.server_generated_key and entry.subject == "CN=device1"


def test_a_held_request_is_202_then_polled_then_issued(server: RunningServer) -> None:
    (ca_dir(server) / "hold").touch()
    der, key = der_csr(cn("device1"))
    first = post(server, "simpleenroll", der, user="device1")
    refused(first, 202, "the CA holds the request")
    assert first.headers["Retry-After"] == "60"
    [held] = ca_dir(server).glob("*.held")
    # The retry (new CSR bytes, same key and subject) polls the same identifier: still held.
    again, _ = der_csr(cn("device1"), key=key)
    refused(post(server, "simpleenroll", again, user="device1"), 202)
    assert list(ca_dir(server).glob("*.held")) == [held]
    (ca_dir(server) / (held.stem + ".approved")).touch()
    issued = post(server, "simpleenroll", again, user="device1")
    assert issued.status == 200, issued.body
    [cert] = issued.certificates()
    assert cert.public_key() == key.public_key()


def test_a_held_request_is_polled_after_a_restart_not_enrolled_again(tmp_path: Path) -> None:
    cfg = handler_cfg(tmp_path)
    root = tmp_path / "srv"
    der, key = der_csr(cn("device1"))
    with running_server(root, cfg) as first:
        assert first.state.users is not None
        first.state.users.add("device1", PASSWORD)
        (ca_dir(first) / "hold").touch()
        refused(post(first, "simpleenroll", der, user="device1"), 202, "the CA holds")
        [held] = ca_dir(first).glob("*.held")
    with running_server(root, cfg) as restarted:
        # The retry polls the identifier the first process was given: still held, no new one.
        again, _ = der_csr(cn("device1"), key=key)
        refused(post(restarted, "simpleenroll", again, user="device1"), 202, "the CA holds")
        assert list(ca_dir(restarted).glob("*.held")) == [held]
        (ca_dir(restarted) / (held.stem + ".approved")).touch()
        issued = post(restarted, "simpleenroll", again, user="device1")
        assert issued.status == 200, issued.body
        [cert] = issued.certificates()
        assert cert.public_key() == key.public_key()
        # Issued: the identifier is dropped, so nothing is polled for this request again.
        csr = x509.load_der_x509_csr(again)
        assert restarted.state.ledger.poll_id("", "device1", fingerprint(csr)) is None


def test_a_retry_on_another_worker_polls_the_same_request(tmp_path: Path) -> None:
    # Two servers on one state directory stand for two worker processes: each has its own
    # handler instance and memory; the poll identifier is in the ledger they share.
    cfg = handler_cfg(tmp_path)
    root = tmp_path / "srv"
    with running_server(root, cfg) as one, running_server(root, cfg) as two:
        assert one.state.users is not None
        one.state.users.add("device1", PASSWORD)
        (ca_dir(one) / "hold").touch()
        der, key = der_csr(cn("device1"))
        refused(post(one, "simpleenroll", der, user="device1"), 202)
        [held] = ca_dir(one).glob("*.held")
        refused(post(two, "simpleenroll", der, user="device1"), 202)
        assert list(ca_dir(one).glob("*.held")) == [held]
        (ca_dir(one) / (held.stem + ".approved")).touch()
        issued = post(two, "simpleenroll", der, user="device1")
        assert issued.status == 200, issued.body
        [cert] = issued.certificates()
        assert cert.public_key() == key.public_key()
        entry = one.state.ledger.get(cert.serial_number)
        assert entry is not None and entry.requester == "device1"


def test_two_worker_processes_poll_one_request(tmp_path: Path) -> None:
    # `[server] workers = 2`: the retry reaches the other process (the first one stopped, so
    # only the other can accept), which polls the identifier the first one was given.
    extra = handler_cfg(tmp_path) + "[server]\nworkers = 2\nshutdown_grace = 5\n"
    root = tmp_path / "srv"
    prepare_state(root, extra, {"device1": PASSWORD})
    (tmp_path / "openssl-ca" / "hold").touch()
    der, key = der_csr(cn("device1"))
    with daemon(root, extra) as running:
        running.wait_for(WORKER_STARTED, count=2)
        workers = {int(i): int(pid) for i, pid in re.findall(WORKER_STARTED, running.log())}

        def through(index: int) -> Reply:
            other = workers[3 - index]
            os.kill(other, signal.SIGSTOP)
            try:
                wait_until_stopped(other)
                request = build_request(
                    "POST",
                    f"{EST}/simpleenroll",
                    wire.encode_base64(der),
                    {"Content-Type": "application/pkcs10", "Authorization": basic_auth()},
                    running.port,
                )
                return https(running.port, request, cafile=root / "state" / "ca" / "ca.pem")
            finally:
                os.kill(other, signal.SIGCONT)

        refused(through(1), 202, "the CA holds")
        [held] = (tmp_path / "openssl-ca").glob("*.held")
        refused(through(2), 202, "the CA holds")
        assert list((tmp_path / "openssl-ca").glob("*.held")) == [held]
        (tmp_path / "openssl-ca" / (held.stem + ".approved")).touch()
        issued = through(2)
        assert issued.status == 200, issued.body
        [cert] = issued.certificates()
        assert cert.public_key() == key.public_key()


def basic_auth() -> str:
    return basic("device1", PASSWORD)


def wait_until_stopped(pid: int) -> None:
    # kill() returns before the target stops; until every thread has, it may still accept.
    deadline = time.monotonic() + 10
    while True:
        states = [
            stat.read_text().rsplit(")", 1)[1].split()[0]
            for stat in Path(f"/proc/{pid}/task").glob("*/stat")
        ]
        if states and all(state in "Tt" for state in states):
            return
        assert time.monotonic() < deadline, f"worker {pid} did not stop: {states}"
        time.sleep(0.01)


def test_a_request_approved_here_then_held_by_the_ca_is_polled_on_each_retry(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    # Held twice: by this server's operator, then by the CA behind the handler. The handler's
    # 202 gives the local claim back, so each retry polls the CA at once.
    cfg = handler_cfg(tmp_path).replace("[profile]\n", "[profile]\napproval = manual\n")
    server = start_est_server(cfg)
    assert server.state.users is not None
    server.state.users.add("device1", PASSWORD)
    (ca_dir(server) / "hold").touch()
    der, key = der_csr(cn("device1"))
    local_id = held_id(post(server, "simpleenroll", der, user="device1"))
    server.state.ledger.decide_pending(local_id, True)
    refused(post(server, "simpleenroll", der, user="device1"), 202, "the CA holds")
    [held] = ca_dir(server).glob("*.held")
    refused(post(server, "simpleenroll", der, user="device1"), 202, "the CA holds")
    assert list(ca_dir(server).glob("*.held")) == [held]
    (ca_dir(server) / (held.stem + ".approved")).touch()
    issued = post(server, "simpleenroll", der, user="device1")
    assert issued.status == 200, issued.body
    [cert] = issued.certificates()
    assert cert.public_key() == key.public_key()
    done = server.state.ledger.get_pending(local_id)
    assert done is not None and done.serial == cert.serial_number


def test_a_rejected_request_is_403_with_the_reason(server: RunningServer) -> None:
    (ca_dir(server) / "hold").touch()
    der, _ = der_csr(cn("device1"))
    refused(post(server, "simpleenroll", der, user="device1"), 202)
    [held] = ca_dir(server).glob("*.held")
    (ca_dir(server) / (held.stem + ".rejected")).touch()
    refused(post(server, "simpleenroll", der, user="device1"), 403, "rejected by the CA officer")
    assert server.state.ledger.count() == 0


def test_local_policy_applies_before_the_handler_is_asked(server: RunningServer) -> None:
    der, _ = der_csr(cn("admin"))
    refused(post(server, "simpleenroll", der, user="device1"), 403)
    assert not list(ca_dir(server).glob("*.csr"))


def test_a_handler_that_does_not_import_stops_start_up_naming_it(tmp_path: Path) -> None:
    handler = tmp_path / "broken.py"
    handler.write_text("from est_proxy.helper import something_we_do_not_provide\n")
    with pytest.raises(ConfigError, match=r"\[profile\] handler_file: .*broken.py does not import"):
        with running_server(
            tmp_path / "srv", f"[profile]\nbackend = handler\nhandler_file = {handler}\n"
        ):
            pass


def test_revoke_goes_to_the_handler_then_the_ledger(server: RunningServer) -> None:
    der, _ = der_csr(cn("device1"))
    [cert] = post(server, "simpleenroll", der, user="device1").certificates()
    serial = serial_hex(cert.serial_number)
    config = str(server.root / "est.cfg")
    assert main(["-c", config, "certs", "revoke", serial, "--reason", "keyCompromise"]) == 0
    assert (ca_dir(server) / "revoked.txt").read_text() == "keyCompromise\n"
    assert server.state.ledger.is_revoked(cert.serial_number)


def test_a_handler_that_fails_to_revoke_changes_nothing(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    der, _ = der_csr(cn("device1"))
    [cert] = post(server, "simpleenroll", der, user="device1").certificates()
    (ca_dir(server) / "revoked.txt").mkdir()  # the handler's append now fails
    config = str(server.root / "est.cfg")
    assert main(["-c", config, "certs", "revoke", serial_hex(cert.serial_number)]) == 1
    assert "not revoked: the CA handler's revoke failed" in capsys.readouterr().err
    assert not server.state.ledger.is_revoked(cert.serial_number)
