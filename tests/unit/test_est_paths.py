"""`messages.parse_est_path` and `label_problem`: labels as RFC 3986 path segments, hostile ones."""

from __future__ import annotations

import pytest

from python_est.errors import NotFound
from python_est.messages import (
    EstPath,
    Operation,
    label_problem,
    label_segment,
    parse_est_path,
)

EST = "/.well-known/est"


@pytest.mark.parametrize(
    ("segment", "label"),
    [
        ("iot", "iot"),
        ("ca:1", "ca:1"),  # Aruba ClearPass
        ("ca%3A1", "ca:1"),  # the same label, percent-encoded
        ("ca%3a1", "ca:1"),
        ("user@site", "user@site"),
        ("a!$&'()*+,;=b", "a!$&'()*+,;=b"),  # every sub-delim
        ("A-Z.a_z~0", "A-Z.a_z~0"),  # every unreserved punctuation mark
        ("%C3%A9t%C3%A9", "été"),
        ("a%22b", 'a"b'),
        ("%25", "%"),
        ("...", "..."),  # not a dot segment
        ("x" * 128, "x" * 128),
    ],
)
def test_labels_that_are_path_segments(segment: str, label: str) -> None:
    parsed = parse_est_path(f"{EST}/{segment}/simpleenroll")
    assert parsed == EstPath(label=label, operation=Operation.SIMPLEENROLL)
    assert label_problem(label) is None
    assert parse_est_path(f"{EST}/{label_segment(label)}/cacerts").label == label


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (f"{EST}/../cacerts", "dot segment"),
        (f"{EST}/./cacerts", "dot segment"),
        (f"{EST}/%2E%2E/cacerts", "dot segment"),
        (f"{EST}/%2e/cacerts", "dot segment"),
        (f"{EST}/%2F/cacerts", "slash"),
        (f"{EST}/a%2Fb/cacerts", "slash"),
        (f"{EST}/a%2fb/cacerts", "slash"),
        (f"{EST}/a%5Cb/cacerts", "slash"),
        (f"{EST}/..%2F..%2Fstate/cacerts", "slash"),
        (f"{EST}/cacerts/cacerts", "operation name"),
        (f"{EST}/simpleenroll/simpleenroll", "operation name"),
        (f"{EST}/%63acerts/cacerts", "operation name"),
        (f"{EST}//cacerts", "path segment"),
        (f"{EST}/a b/cacerts", "path segment"),
        (f"{EST}/a%20b/cacerts", "white space"),
        (f"{EST}/a%09b/cacerts", "white space"),
        (f"{EST}/%00/cacerts", "control"),
        (f"{EST}/%0D%0A/cacerts", "white space"),
        (f"{EST}/a%ZZ/cacerts", "path segment"),
        (f"{EST}/a%/cacerts", "path segment"),
        (f"{EST}/%C3/cacerts", "UTF-8"),
        (f"{EST}/%FF/cacerts", "UTF-8"),
        (f"{EST}/a[b]/cacerts", "path segment"),
        (f'{EST}/a"b/cacerts', "path segment"),
        (f"{EST}/a\\b/cacerts", "path segment"),
        (f"{EST}/{'x' * 129}/cacerts", "1 to 128"),
        (f"{EST}/a/b/cacerts", "at most one label"),
        (f"{EST}/a%2F/b/cacerts", "at most one label"),
    ],
)
def test_hostile_labels_are_404_with_a_reason(target: str, reason: str) -> None:
    with pytest.raises(NotFound) as info:
        parse_est_path(target)
    assert info.value.status == 404
    assert reason in info.value.detail
    assert "\n" not in info.value.detail and "\r" not in info.value.detail


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("", "1 to 128"),
        ("..", "dot segment"),
        ("serverkeygen", "operation name"),
        ("a/b", "slash"),
        ("a b", "white space"),
        ("a\x7fb", "control"),
    ],
)
def test_label_problem_for_config_names(label: str, reason: str) -> None:
    problem = label_problem(label)
    assert problem is not None and reason in problem
