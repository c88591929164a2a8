"""TLS session-ticket keys (RFC 5077) that every serving process shares: one concept, two stores.

`file` (`TicketKeyFile`, `rotate_ticket_keys`): a key file in the state directory, shared by
the workers of one host and rotated by the main process. `database` (`TicketKeyRing`): keys in
the PostgreSQL database, shared by every instance of a fleet and rotated there; it is imported
only when `[ledger] url` is set (psycopg is optional). Both are a `python_est.tls.TicketKeys`:
a callable returning the keys, sealing key first.
"""

from __future__ import annotations

from python_est.ticketkeys.file import TicketKeyFile, read_ticket_keys, rotate_ticket_keys

__all__ = ["TicketKeyFile", "read_ticket_keys", "rotate_ticket_keys"]
