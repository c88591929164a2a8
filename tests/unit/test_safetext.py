"""Client text made safe for log lines and terminals: tables of hostile inputs."""

from __future__ import annotations

import json

import pytest

from python_est.safetext import escape, escape_ascii, escape_json, field, quote

# (hostile text, what `escape` must make of it)
HOSTILE = [
    (
        "line\n2026-01-01 INFO python_est.audit: forged",
        "line\\n2026-01-01 INFO python_est.audit: forged",
    ),
    ("cr\rover", "cr\\rover"),
    ("tab\tcolumn", "tab\\tcolumn"),
    ("\x1b[2K\x1b[1GCN=device1", "\\x1b[2K\\x1b[1GCN=device1"),
    ("nul\x00", "nul\\x00"),
    ("del\x7f", "del\\x7f"),
    ("c1 csi \x9b2J", "c1 csi \\x9b2J"),
    ("next line \x85", "next line \\x85"),
    ("nbsp\xa0x", "nbsp\\xa0x"),
    ("rlo \u202eelif", "rlo \\u202eelif"),
    ("isolates \u2066x\u2069", "isolates \\u2066x\\u2069"),
    ("lrm \u200e rlm \u200f alm \u061c", "lrm \\u200e rlm \\u200f alm \\u061c"),
    ("zero width \u200b", "zero width \\u200b"),
    ("ls \u2028 ps \u2029", "ls \\u2028 ps \\u2029"),
    ("tag \U000e0041", "tag \\U000e0041"),
    ("surrogate \udcff", "surrogate \\udcff"),
    ("bom \ufeff", "bom \\ufeff"),
]
BENIGN = ["CN=device1,O=Example", "straße", "Ünïcödé ✓", "a\\b", 'say "hi"', "", "x=y z"]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_escape_makes_every_control_visible(text: str, expected: str) -> None:
    escaped = escape(text)
    assert escaped == expected
    assert escaped.isprintable()
    assert len(escaped.splitlines()) <= 1


@pytest.mark.parametrize("text", BENIGN)
def test_escape_keeps_printable_text(text: str) -> None:
    assert escape(text) == text


@pytest.mark.parametrize(("text", "_"), HOSTILE)
def test_escape_is_idempotent(text: str, _: str) -> None:
    assert escape(escape(text)) == escape(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb", '"a\\nb"'),
        # A typed backslash-n and a real newline no longer look alike.
        ("a\\nb", '"a\\\\nb"'),
        ("\u202e", '"\\u202e"'),
        ("", '""'),
    ],
)
def test_quote_is_unambiguous(text: str, expected: str) -> None:
    assert quote(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("device-1", "device-1"),
        ("CN=device-1,O=Example", "CN=device-1,O=Example"),
        ("alice status=200", '"alice status=200"'),
        ('x" status=200 "', '"x\\" status=200 \\""'),
        ("a\\b", '"a\\\\b"'),
        ("nbsp\xa0status=200", '"nbsp\\xa0status=200"'),
        ("", '""'),
    ],
)
def test_field_quotes_whatever_could_fake_a_field(text: str, expected: str) -> None:
    assert field(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("admin", "admin"),
        ("\u0430dmin", "\\u0430dmin"),  # Cyrillic a
        ("stra\u00dfe", "stra\\xdfe"),
        ('q"\\', 'q\\"\\\\'),
        ("\U0001f600", "\\U0001f600"),
    ],
)
def test_escape_ascii_shows_look_alikes(text: str, expected: str) -> None:
    assert escape_ascii(text) == expected


@pytest.mark.parametrize(("text", "_"), [*HOSTILE, ("emoji \U0001f600 tag \U000e0041", "")])
def test_escape_json_keeps_the_value_and_one_line(text: str, _: str) -> None:
    line = escape_json(json.dumps({"subject": text}, ensure_ascii=False))
    assert line.isprintable()
    assert len(line.splitlines()) == 1
    assert json.loads(line) == {"subject": text}


def test_escape_json_keeps_printable_unicode_readable() -> None:
    line = escape_json(json.dumps({"name": "straße ✓"}, ensure_ascii=False))
    assert "straße ✓" in line
