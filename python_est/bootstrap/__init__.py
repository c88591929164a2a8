"""The human bootstrap page (outside `/.well-known/est/`): an HTML form that enrolls through the
EST service with the same authentication, rate limits, authorization and ledger as devices.

Split by concept: `forms` (form body parsing), `views` (HTML), `page` (`BootstrapPage`),
`csrf` (cross-site forgery checks and form tokens).
"""

from __future__ import annotations

from python_est.bootstrap.csrf import derive_form_secret
from python_est.bootstrap.forms import Form, Upload, parse_form
from python_est.bootstrap.page import SECURITY_HEADERS, BootstrapPage, EstHandler
from python_est.bootstrap.views import CONTENT_SECURITY_POLICY

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "BootstrapPage",
    "EstHandler",
    "Form",
    "Upload",
    "derive_form_secret",
    "parse_form",
]
