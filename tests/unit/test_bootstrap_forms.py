"""Form bodies in, fields out: urlencoded and multipart/form-data, including what the ancestor's
hand-written parser got wrong (`+`, `%2B`, `=` inside values, UTF-8)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from python_est.bootstrap import Form, Upload, parse_form
from python_est.bootstrap.forms import MAX_FIELDS, parse_form_data, parse_urlencoded
from python_est.errors import BadRequest, EstError, UnsupportedMediaType

URLENCODED = "application/x-www-form-urlencoded"
BOUNDARY = "----WebKitFormBoundaryx7Q2mZ9kq1VbL3aF"
FORM_DATA = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str, bytes], boundary: str = BOUNDARY) -> bytes:
    """A body as Chromium writes it: each part is (Content-Disposition params + headers, data)."""
    out = b""
    for head, data in parts:
        out += f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def field(name: str, value: str) -> tuple[str, bytes]:
    return f'Content-Disposition: form-data; name="{name}"', value.encode("utf-8")


# --- application/x-www-form-urlencoded --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # The ancestor kept "+" and "%2B" literally; both are wrong.
        (b"password=a+b", "a b"),
        (b"password=a%2Bb", "a+b"),
        (b"password=%2B%2B", "++"),
        # Only the first "=" separates: base64 padding and "k=v" survive.
        (b"password=abc==", "abc=="),
        (b"password=x%3Dy=z", "x=y=z"),
        # UTF-8, percent-encoded as browsers send it.
        (b"password=p%C3%A4ss%E2%82%AC", "p\u00e4ss\u20ac"),
        (b"password=%F0%9F%94%91", "\U0001f511"),
        # Other escapes and an empty value.
        (b"password=%26%25%23%3B", "&%#;"),
        (b"password=", ""),
        (b"password=semi;colon", "semi;colon"),
    ],
)
def test_urlencoded_values_decode_like_a_browser_encodes_them(body: bytes, expected: str) -> None:
    assert parse_form(URLENCODED, body).get("password") == expected


def test_urlencoded_round_trips_what_urlencode_produces() -> None:
    values = {"user": "J\u00fcrgen M\u00fcller", "password": "a+b=c&d%e f/?#\u00df", "mode": "csr"}
    form = parse_form(URLENCODED, urlencode(values).encode("ascii"))
    assert {name: form.get(name) for name in values} == values


def test_urlencoded_keeps_order_and_blank_fields() -> None:
    form = parse_urlencoded(b"a=1&b=&c=3")
    assert form.fields == (("a", "1"), ("b", ""), ("c", "3"))
    assert form.get("missing") == ""


def test_content_type_parameters_and_case_are_accepted() -> None:
    form = parse_form("Application/X-WWW-Form-Urlencoded ; charset=UTF-8", b"a=%C3%A9")
    assert form.get("a") == "\u00e9"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"password=%FF", "not valid UTF-8"),
        (b"password=\xff", "not valid UTF-8"),
        (b"a=1&b", "malformed"),
        (b"a=1&&b=2", "malformed"),
        (b"&".join(b"f%d=1" % i for i in range(MAX_FIELDS + 1)), "too many"),
    ],
)
def test_malformed_urlencoded_bodies_are_400(body: bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_urlencoded(body)
    assert info.value.status == 400
    assert reason in info.value.detail


def test_repeated_field_is_refused_when_read() -> None:
    form = parse_urlencoded(b"user=alice&user=mallory")
    with pytest.raises(BadRequest) as info:
        form.get("user")
    assert info.value.status == 400


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_other_media_types_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        parse_form(content_type, b"a=1")
    assert info.value.status == 415


# --- multipart/form-data -----------------------------------------------------------------------


def test_multipart_text_fields_are_utf8_and_kept_verbatim() -> None:
    body = multipart(
        field("user", "J\u00fcrgen"),
        field("password", "a+b%2B=c"),  # no percent-decoding in multipart
        field("csr", "-----BEGIN CERTIFICATE REQUEST-----\r\nMIIB\r\n"),
    )
    form = parse_form(FORM_DATA, body)
    assert form.get("user") == "J\u00fcrgen"
    assert form.get("password") == "a+b%2B=c"
    assert form.get("csr") == "-----BEGIN CERTIFICATE REQUEST-----\r\nMIIB\r\n"
    assert form.files == ()


def test_multipart_file_part_keeps_binary_content() -> None:
    der = bytes(range(256)) + b"\r\n--not-a-boundary\r\n"
    body = multipart(
        field("user", "alice"),
        (
            'Content-Disposition: form-data; name="csr_file"; filename="device.der"\r\n'
            "Content-Type: application/octet-stream",
            der,
        ),
    )
    upload = parse_form(FORM_DATA, body).file("csr_file")
    assert upload == Upload("device.der", "application/octet-stream", der)


def test_multipart_utf8_filename_and_browser_escapes() -> None:
    # Chromium writes raw UTF-8 in the quotes and percent-encodes only '"', CR and LF.
    head = (
        'Content-Disposition: form-data; name="csr_file"; filename="r\u00e9q %22x%22.pem"\r\n'
        "Content-Type: application/x-pem-file"
    )
    body = multipart((head, b"PEM"))
    upload = parse_form(FORM_DATA, body).file("csr_file")
    assert upload is not None
    assert upload.filename == 'r\u00e9q "x".pem'
    assert upload.data == b"PEM"


def test_multipart_empty_file_input_counts_as_no_file() -> None:
    head = (
        'Content-Disposition: form-data; name="csr_file"; filename=""\r\n'
        "Content-Type: application/octet-stream"
    )
    form = parse_form(FORM_DATA, multipart(field("csr", "x"), (head, b"")))
    assert form.file("csr_file") is None
    assert form.file("absent") is None


def test_multipart_quoted_boundary_and_semicolon_in_name() -> None:
    body = multipart(
        ('Content-Disposition: form-data; name="a;b"', b"v"), boundary="simple-boundary"
    )
    form = parse_form('multipart/form-data; boundary="simple-boundary"', body)
    assert form.fields == (("a;b", "v"),)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (FORM_DATA, b"no delimiters at all"),
        ("multipart/form-data", multipart(field("a", "1"))),  # no boundary parameter
        (FORM_DATA, multipart(("Content-Disposition: attachment", b"x"))),
        (FORM_DATA, multipart(("Content-Type: text/plain", b"x"))),
        (FORM_DATA, multipart(field("a", "ok"), ("X: y", b"x"))),
        (FORM_DATA, multipart(('Content-Disposition: form-data; name="a"', b"\xff\xfe"))),
        (FORM_DATA, multipart(*[field(f"f{i}", "1") for i in range(MAX_FIELDS + 1)])),
    ],
)
def test_malformed_multipart_bodies_are_400(content_type: str, body: bytes) -> None:
    with pytest.raises(EstError) as info:
        parse_form_data(content_type, body)
    assert info.value.status == 400


def test_form_value_object_lookups() -> None:
    form = Form(fields=(("a", "1"),), files=(("f", Upload("x", "t", b"d")),))
    assert form.get("a") == "1"
    assert form.file("f") == Upload("x", "t", b"d")
