"""HTML form bodies: `application/x-www-form-urlencoded` and `multipart/form-data` (RFC 7578).

The ancestor split the body on `&` and `=` by hand: `+` stayed a plus, `%2B` stayed `%2B`, a
value holding `=` was cut short and UTF-8 came out as mojibake. Here the urlencoded body goes
through `urllib.parse.parse_qsl` in strict mode (the WHATWG rules: `+` is a space, percent-escapes
are UTF-8, only the first `=` separates name from value), and multipart bodies through
`python_est.wire.parse_multipart`. `csr_der` finds the CSR in a submitted form.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from python_est import wire
from python_est.errors import BadRequest, InvalidCsr, MalformedBody, UnsupportedMediaType

URLENCODED = "application/x-www-form-urlencoded"
FORM_DATA = "multipart/form-data"
MAX_FIELDS = 32
MAX_CSR_BYTES = 32 * 1024
# Searched one after the other, each from where the last ended: linear in the input. A single
# `BEGIN(.*?)END` pattern rescans to the end from every BEGIN when no END follows: quadratic
# (32 KB of BEGIN markers cost 0.2 s of CPU per request).
_PEM_BEGIN_RE = re.compile(rb"-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----")
_PEM_END_RE = re.compile(rb"-----END (?:NEW )?CERTIFICATE REQUEST-----")

_PARAM_RE = re.compile(
    r";[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*(\"[^\"]*\"|[^;\"]*)", re.ASCII
)


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart form: what the browser sent, unchanged."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Form:
    """The fields and file parts of one submitted form, in the order they were sent."""

    fields: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, Upload], ...] = ()

    def get(self, name: str) -> str:
        """The value of text field `name`; "" when absent.

        Raises:
            BadRequest: the field was sent more than once (the page never does that).
        """
        values = [value for key, value in self.fields if key == name]
        if len(values) > 1:
            raise BadRequest(f"form field {name!r} was sent more than once")
        return values[0] if values else ""

    def file(self, name: str) -> Upload | None:
        """The file part `name`, or None when absent or when no file was chosen.

        Raises:
            BadRequest: the part was sent more than once.
        """
        uploads = [upload for key, upload in self.files if key == name]
        if len(uploads) > 1:
            raise BadRequest(f"form field {name!r} was sent more than once")
        if not uploads or (not uploads[0].filename and not uploads[0].data):
            # A file input with nothing chosen still sends an empty part with filename="".
            return None
        return uploads[0]


def parse_form(content_type: str | None, body: bytes) -> Form:
    """Parse a form submission by its Content-Type.

    Returns:
        The form. Text values are UTF-8 decoded; in multipart forms a part with a `filename`
        parameter is a file, every other part is a text field.

    Raises:
        UnsupportedMediaType: neither form type.
        BadRequest: malformed encoding, invalid UTF-8, or more than `MAX_FIELDS` fields.
    """
    if content_type is None:
        raise UnsupportedMediaType(f"missing Content-Type: send {URLENCODED} or {FORM_DATA}")
    media_type, _ = wire.parse_media_type(content_type)
    if media_type == URLENCODED:
        return parse_urlencoded(body)
    if media_type == FORM_DATA:
        return parse_form_data(content_type, body)
    raise UnsupportedMediaType(f"forms must be sent as {URLENCODED} or {FORM_DATA}")


def parse_urlencoded(body: bytes) -> Form:
    """Parse an `application/x-www-form-urlencoded` body (WHATWG URL, urlencoded parsing).

    Raises:
        BadRequest: a field without `=`, an empty field, invalid UTF-8 (raw or percent-encoded),
            or too many fields.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
            separator="&",
        )
    except UnicodeDecodeError:
        raise BadRequest("the form is not valid UTF-8") from None
    except ValueError as exc:
        reason = "too many form fields" if "Max number" in str(exc) else "malformed form encoding"
        raise BadRequest(reason) from None
    return Form(fields=tuple(pairs))


def parse_form_data(content_type: str, body: bytes) -> Form:
    """Parse a `multipart/form-data` body (RFC 7578).

    Raises:
        BadRequest: not multipart, a part without `Content-Disposition: form-data; name=...`,
            a text field that is not UTF-8, or too many parts.
    """
    try:
        parts = wire.parse_multipart(content_type, body)
    except MalformedBody as exc:
        raise BadRequest(f"malformed multipart form ({exc.detail})") from None
    if len(parts) > MAX_FIELDS:
        raise BadRequest("too many form fields")
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, Upload]] = []
    for headers, content in parts:
        disposition = headers.get("content-disposition", "")
        kind, _, _ = disposition.partition(";")
        params = _disposition_params(disposition)
        name = params.get("name")
        if kind.strip().lower() != "form-data" or name is None:
            raise BadRequest("multipart form part without Content-Disposition: form-data; name")
        if "filename" in params:
            part_type = headers.get("content-type", "application/octet-stream")
            files.append((name, Upload(params["filename"], part_type, content)))
            continue
        try:
            fields.append((name, content.decode("utf-8")))
        except UnicodeDecodeError:
            raise BadRequest(f"form field {name!r} is not valid UTF-8") from None
    return Form(fields=tuple(fields), files=tuple(files))


def _disposition_params(value: str) -> dict[str, str]:
    """`name` and `filename` from a Content-Disposition value, as browsers write them.

    Browsers (HTML "multipart/form-data encoding algorithm") put raw UTF-8 inside the quotes and
    percent-encode only `"`, CR and LF; they never use backslash escapes, so none are undone here.
    `wire.parse_multipart` hands header values over as latin-1 text, so UTF-8 is restored first.
    """
    try:
        text = value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        text = value
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(text):
        raw = match.group(2).strip()
        unquoted = raw[1:-1] if raw.startswith('"') else raw
        params.setdefault(match.group(1).lower(), _unescape_browser(unquoted))
    return params


def _unescape_browser(text: str) -> str:
    return text.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def csr_der(form: Form) -> bytes:
    """The CSR from the text area or the file part, as DER (PEM, DER or bare base64 accepted)."""
    text = form.get("csr").strip()
    upload = form.file("csr_file")
    if text and upload is not None:
        raise BadRequest("Paste the CSR or upload a file, not both.")
    if not text and upload is None:
        raise BadRequest("Paste a certificate signing request (CSR) or choose a CSR file.")
    data = upload.data if upload is not None else text.encode("utf-8")
    if len(data) > MAX_CSR_BYTES:
        raise BadRequest("The CSR is too large.")
    if b"-----BEGIN" in data:
        begin = _PEM_BEGIN_RE.search(data)
        end = _PEM_END_RE.search(data, begin.end()) if begin is not None else None
        if begin is None or end is None:
            raise InvalidCsr("no PEM CERTIFICATE REQUEST block found")
        data = data[begin.end() : end.start()]
    elif data[:1] == b"\x30":
        return data
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCsr("the CSR is neither PEM nor DER") from None
