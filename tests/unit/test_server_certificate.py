"""The generated TLS server certificate stays within Apple's 825-day limit (issue 13 item 10)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from python_est.ca import CLOCK_SKEW, CertificateAuthority
from python_est.config import load_config
from python_est.keys import KeyType
from python_est.state import open_state

APPLE_MAX = timedelta(days=825)
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_first_start_makes_a_server_certificate_spanning_at_most_825_days(tmp_path: Path) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    state = open_state(load_config(cfg), create=True)
    try:
        cert = state.server.chain[0]
        span = cert.not_valid_after_utc - cert.not_valid_before_utc
        # Backdated for clock skew, and still 825 days in all, not 825 days plus the skew.
        assert span == APPLE_MAX
        assert cert.not_valid_before_utc < datetime.now(timezone.utc) - CLOCK_SKEW / 2
    finally:
        state.ledger.close()


def test_server_validity_days_is_the_whole_span_backdating_included() -> None:
    ca = CertificateAuthority.create_root(
        common_name="Span CA", key_type=KeyType.EC_P256, validity_days=3650, now=NOW
    )
    later = NOW + timedelta(days=1)
    cert, _ = ca.issue_server_certificate(
        common_name="est.example",
        dns_names=["est.example"],
        ip_addresses=[],
        key_type=KeyType.EC_P256,
        validity_days=825,
        now=later,
    )
    assert cert.not_valid_before_utc == later - CLOCK_SKEW
    assert cert.not_valid_after_utc == later - CLOCK_SKEW + APPLE_MAX
