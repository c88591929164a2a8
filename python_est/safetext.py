"""Client-derived text made safe to show: one log line stays one line, a terminal shows text.

A subject, SAN, user name, path or header value comes from whoever sent it. Written raw into a
plain log line, a newline starts a forged event; written raw to the operator's terminal, an
escape sequence (ESC, CSI) or a bidirectional override (U+202E) can hide or rewrite what is
shown, so the operator approves `CN=admin` while reading `CN=device1`. Everything here is pure.

`escape` backslash-escapes every character Python does not consider printable: C0 controls
(newline, ESC, ...), DEL, C1 controls, bidirectional and other format characters (Unicode Cf,
which includes U+202A..U+202E, U+2066..U+2069 and the invisible tag characters), line and
paragraph separators, surrogates and unassigned code points, and every space except U+0020.
Printable text (including non-ASCII letters) is kept as it is.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that end or split a bare (unquoted) `key=value` field in a plain log line.
_QUOTE_TRIGGERS = frozenset(' "\\')


def _escape_char(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """`text` with every non-printable character as a backslash escape (`\\n`, `\\x1b`, ...).

    Backslashes already in `text` are kept, so escaping twice changes nothing; where a reader
    must tell a real escape from a typed one, use `quote`.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape_char(char) for char in text)


def escape_ascii(text: str) -> str:
    """`text` escaped as by `quote`, but with every non-ASCII character as `\\uXXXX` too.

    Shows look-alike letters (Cyrillic a, U+0430, for Latin a) for what they are.
    """
    return "".join(
        char if " " <= char <= "~" and char not in '"\\' else _quoted_char(char) for char in text
    )


def _quoted_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    return _escape_char(char)


def quote(text: str) -> str:
    """`text` in double quotes, unambiguous: `\\`, `"` and non-printable characters escaped."""
    return (
        '"'
        + "".join(_quoted_char(c) if c in '"\\' or not c.isprintable() else c for c in text)
        + '"'
    )


def field(text: str) -> str:
    """A value for a space-separated plain log line: bare when that is safe, else `quote`d.

    Bare values cannot contain a space, a quote, a backslash or a non-printable character, so a
    client value can never end its field early and append `status=200` or a forged event.
    """
    if text and text.isprintable() and not _QUOTE_TRIGGERS.intersection(text):
        return text
    return quote(text)


def escape_json(line: str) -> str:
    """A JSON text with every non-printable character left raw by `json.dumps` as `\\uXXXX`.

    `json.dumps(..., ensure_ascii=False)` escapes only C0 controls, `"` and `\\`; DEL, C1,
    bidirectional overrides and U+2028/U+2029 (line breaks to `str.splitlines` and JavaScript)
    would stay raw. Such characters can only occur inside JSON strings, where `\\uXXXX` (a
    surrogate pair above U+FFFF, RFC 8259 §7) means the same character, so the JSON value is
    unchanged and the line stays one line.
    """
    if line.isprintable():
        return line
    return "".join(char if char.isprintable() else _json_escape(char) for char in line)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
