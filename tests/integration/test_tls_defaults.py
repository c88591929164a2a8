"""The TLS defaults are what the docs say (issue 13 item 10), observed from a real client: the
CertificateRequest of the default policy asks for no SHA-1 or SHA-224 signature, DSA included."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.constants import HashAlgorithm, SignatureAlgorithm
from tlslite.messages import CertificateRequest

from python_est.config import TlsConfig
from python_est.server import EstServer
from tests.tls_support import Pki, make_pki, running_server

pytestmark = pytest.mark.integration

WEAK_HASHES = {HashAlgorithm.sha1, HashAlgorithm.sha224}


class _Recorder(TLSConnection):  # type: ignore[misc]
    """A tlslite client that keeps the server's CertificateRequest."""

    request: CertificateRequest | None = None

    def _getMsg(self, *args: Any, **kwargs: Any) -> Iterator[Any]:  # noqa: N802
        for result in super()._getMsg(*args, **kwargs):
            if isinstance(result, CertificateRequest):
                self.request = result
            yield result


def _requested_sigalgs(server: EstServer) -> list[tuple[int, int]]:
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)  # a CertificateRequest lists sigalgs in TLS 1.2
    with socket.create_connection(server.server_address, timeout=10) as sock:
        conn = _Recorder(sock)
        conn.handshakeClientCert(settings=settings)  # no certificate: an empty Certificate
        conn.close()
    assert conn.request is not None, "the server sent no CertificateRequest"
    sigalgs: list[tuple[int, int]] = conn.request.supported_signature_algs
    return sigalgs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(Path(tmp_path_factory.mktemp("pki")))


def test_default_certificate_request_asks_for_no_sha1_or_sha224_signatures(pki: Pki) -> None:
    with running_server(pki, None) as server:
        sigalgs = _requested_sigalgs(server)
    weak = [alg for alg in sigalgs if alg[0] in WEAK_HASHES]
    assert weak == [], f"weak signature algorithms requested: {weak}"
    assert (HashAlgorithm.sha256, SignatureAlgorithm.ecdsa) in sigalgs
    assert (HashAlgorithm.sha256, SignatureAlgorithm.rsa) in sigalgs


def test_legacy_mode_still_asks_for_sha1_for_old_clients(pki: Pki) -> None:
    # The control: the same client sees SHA-1 (DSA too) when legacy mode is configured, so
    # the default test above would notice a request that lists them.
    with running_server(pki, None, params=TlsConfig(allow_legacy=True)) as server:
        sigalgs = _requested_sigalgs(server)
    assert (HashAlgorithm.sha1, SignatureAlgorithm.dsa) in sigalgs
    assert (HashAlgorithm.sha1, SignatureAlgorithm.rsa) in sigalgs
