"""Config keys of the subject and reenrollment policy (issue 13): parsed, checked, inherited."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID, ObjectIdentifier

from python_est.config import load_config
from python_est.config.convert import to_subject_fixed, to_subject_types
from python_est.errors import ConfigError


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "est.cfg"
    path.write_text(text)
    return load_config(path)


def test_defaults(tmp_path: Path) -> None:
    label = load(tmp_path, "[label:x]\n").labels["x"]
    assert label.reenroll_from == ()
    profile = label.profile
    assert (profile.max_rdns, profile.max_attributes, profile.max_extensions) == (16, 32, 32)
    assert profile.subject_attributes == frozenset()
    assert profile.subject_fixed == ()


def test_policy_keys_are_read_and_inherited(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "[profile]\nsubject_attributes = serialNumber, OU, 1.2.3.4\n"
        "subject_fixed = O=Example Corp, C=DE\nmax_rdns = 4\n"
        "[label:iot]\nmax_attributes = 6\nmax_extensions = 5\n"
        '[label:ra]\nreenroll_from = "", iot\n',
    )
    iot = config.labels["iot"].profile
    assert iot.subject_attributes == {
        NameOID.SERIAL_NUMBER,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        ObjectIdentifier("1.2.3.4"),
    }
    # RFC 4514 writes the most significant attribute last; the profile keeps encoding order.
    assert iot.subject_fixed == (
        (NameOID.COUNTRY_NAME, "DE"),
        (NameOID.ORGANIZATION_NAME, "Example Corp"),
    )
    assert (iot.max_rdns, iot.max_attributes, iot.max_extensions) == (4, 6, 5)
    assert config.labels["ra"].reenroll_from == ("", "iot")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject_attributes = CN", "CN cannot be listed"),
        ("subject_attributes = OU, bogus", "unknown subject attribute 'bogus'"),
        ("subject_fixed = CN=admin", "CN cannot be listed"),
        ("subject_fixed = O=a+OU=b", "multi-valued RDNs cannot be fixed"),
        ("subject_fixed = nonsense", "not an RFC 4514 name"),
        ("subject_fixed = O=a\\0Ab", "empty or unprintable value"),
        ("max_rdns = 0", "positive integer"),
        ("reenroll_from = nosuch", "no CA label 'nosuch'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    key = text.split(" =")[0]
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[label:x]\n{text}\n")
    assert f"[label:x] {key}" in str(info.value)
    assert message in str(info.value)


def test_cmc_ra_with_automatic_approval_warns(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "[label:ra]\nextended_key_usage = clientAuth, cmcRA\n"
        "[label:ra2]\nextended_key_usage = cmcRA\napproval = manual\n",
    )
    assert len(config.warnings) == 1
    assert "[label:ra] extended_key_usage grants cmcRA" in config.warnings[0]
    assert "held for manual approval" in config.warnings[0]


def test_converters_directly() -> None:
    assert to_subject_types("") == frozenset()
    assert to_subject_fixed("") == ()
    assert to_subject_fixed("OU=Lab\\, East") == ((NameOID.ORGANIZATIONAL_UNIT_NAME, "Lab, East"),)
