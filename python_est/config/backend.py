"""The keys of a label's issuing backend (`backend`, `upstream_*`, `handler_file`)."""

from __future__ import annotations

from dataclasses import replace

from python_est.config.keys import HANDLER_SECTION
from python_est.config.model import LabelConfig
from python_est.config.reader import Reader


def check_backend(reader: Reader, section: str, label: LabelConfig) -> LabelConfig:
    """`label` with its handler's settings; what its backend cannot work without is refused,
    naming the key that is missing (python_est.backends)."""
    if label.backend == "est":
        if not label.upstream_url:
            raise reader.error(section, "upstream_url", "backend = est needs the upstream's URL")
        if label.upstream_ca_file is None:
            raise reader.error(
                section, "upstream_ca_file", "backend = est needs the CA bundle of the upstream"
            )
        if (label.upstream_client_cert is None) != (label.upstream_client_key is None):
            raise reader.error(
                section,
                "upstream_client_key",
                "upstream_client_cert and upstream_client_key go together",
            )
        if (label.upstream_user == "") != (label.upstream_password is None):
            raise reader.error(
                section, "upstream_password", "upstream_user and upstream_password go together"
            )
        if label.upstream_client_cert is None and not label.upstream_user:
            raise reader.error(
                section,
                "upstream_client_cert",
                "backend = est needs an RA certificate (upstream_client_cert) or upstream_user",
            )
    if label.backend == "handler":
        if label.handler_file is None:
            raise reader.error(section, "handler_file", "backend = handler needs handler_file")
        options = []
        if reader.parser.has_section(HANDLER_SECTION):
            options = reader.parser.items(HANDLER_SECTION, raw=True)
        for key, _ in options:
            reader.used.add((HANDLER_SECTION, key))
        return replace(label, handler_options=tuple(options))
    return label
