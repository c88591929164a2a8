"""python-est: an EST (RFC 7030) server on tlslite-ng."""

__version__ = "0.1.0"
