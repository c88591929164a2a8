"""One rule for when two user names stand for the same account.

The user store refuses to create a name that collides with an existing one under this rule, and
the failure counters key on it, so look-alike names (``Kiosk`` spelled with U+212A KELVIN SIGN,
``straße`` and ``STRASSE``) can neither be two accounts nor two counters. Logins still need the
exact stored name (NFC): the folded form only compares, it never authenticates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


def fold_username(name: str) -> str:
    """The form under which two user names count as the same account.

    NFKC, full Unicode case folding, NFKC again: Unicode's NFKC_Casefold without the removal of
    default-ignorable characters (which the store refuses as control characters anyway). The
    second NFKC closes the few cases where case folding leaves a non-normalised string.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def same_account(name: str, existing: Iterable[str]) -> str | None:
    """The first of `existing` that is `name` or folds to it (`fold_username`), or None."""
    folded = fold_username(name)
    return next((other for other in existing if fold_username(other) == folded), None)
