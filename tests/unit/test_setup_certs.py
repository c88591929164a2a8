"""scripts/setup_certs.py writes where the config says, or refuses and writes nothing."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509

from python_est.ca import load_pem_certificates

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup_certs.py"
CONFIGURED = """\
[server]
state_dir = state
[ca]
key_type = ec-p256
cert_file = certs/ca-cert.pem
key_file = certs/ca-key.pem
[tls]
cert_file = certs/server.crt
key_file = certs/server.key
"""


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("setup_certs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def test_writes_the_files_the_config_names_then_the_state(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(CONFIGURED)
    assert tool.main(["-c", str(cfg)]) == 0
    certs = tmp_path / "certs"
    for key in ("ca-key.pem", "server.key"):
        assert stat.S_IMODE((certs / key).stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((certs / "ca-cert.pem").read_bytes())
    server = load_pem_certificates((certs / "server.crt").read_bytes())
    assert server[0].issuer == ca.subject and server[1] == ca
    assert (tmp_path / "state" / "ledger.sqlite3").exists()
    assert not (tmp_path / "state" / "ca").exists()  # the configured CA is the CA
    out = capsys.readouterr().out
    assert "created CA" in out and "created TLS server certificate" in out
    before = {path: path.read_bytes() for path in certs.iterdir()}
    assert tool.main(["-c", str(cfg), "--force"]) == 0  # never replaces configured files
    assert {path: path.read_bytes() for path in certs.iterdir()} == before


TLS_ONLY = CONFIGURED.replace("cert_file = certs/ca-cert.pem\nkey_file = certs/ca-key.pem\n", "")


@pytest.mark.parametrize(
    ("text", "present", "message"),
    [
        (CONFIGURED, "certs/ca-key.pem", "[ca] cert_file: "),
        (CONFIGURED, "certs/server.crt", "[tls] key_file: "),
        (TLS_ONLY, "", "[tls] cert_file: "),
    ],
)
def test_refuses_and_writes_nothing(
    tool: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    present: str,
    message: str,
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(text)
    if present:
        (tmp_path / present).parent.mkdir()
        (tmp_path / present).write_text("kept\n")
    before = files(tmp_path)
    assert tool.main(["-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing was written" in err
    assert files(tmp_path) == before
