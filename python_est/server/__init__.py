"""The accept loop: bounded workers, deadlines, HTTP/1.1 framing, one response per connection.

This is the one place where exceptions become responses: an `EstError` becomes its status with a
short text/plain reason; anything else is a bug, logged with its traceback and answered with a
bare 500.

Capacity. At most `max_connections` workers, each accepting for itself: while every worker is
busy the server does not accept, so further connections wait in the kernel's listen queue
(`backlog`) instead of being accepted and dropped. Every connection is bounded in time: the
handshake must finish within `handshake_timeout`, the request head within `header_timeout` after
it, and the whole request within `request_timeout` after it. All are absolute deadlines applied
to every socket call (see `python_est.tls`), so a client that trickles bytes cannot hold a worker
longer than that, and idle or half-open connections are dropped when their deadline passes. One
address holds at most `max_connections_per_address` workers, and when the pool is full while a
connection waits, a connection still waiting for its own client is evicted (`table`).

Reload and stop. `replace_app` swaps the handshaker and handler as one pair: each connection
takes the pair current when it is accepted, so connections in flight finish with the old
credentials and configuration while new ones get the new. `request_stop(grace)` (safe from any
thread) stops accepting; `serve_forever` then waits up to `grace` seconds for connections in
flight, cuts the rest, and returns once every connection thread is done.

Pre-fork. `bind_listener` makes the listening socket; several processes may each run an
`EstServer` on the same inherited socket (`listener=`), and the kernel hands each connection to
one of them. `notify_systemd` sends sd_notify(3) messages (the only other socket the CLI needs).

PROXY protocol. With `proxy_protocol` on, a connection from one of `trusted_proxies` (a TCP
load balancer) must begin with a PROXY header (`python_est.server.proxyproto`), read before the TLS
handshake and under its deadline; the client it names is then the connection's address for the
per-address cap, the handshake's `PeerIdentity` (and so the failed-login counters) and the log
line. Connections from other addresses are direct clients.

Split by concept: `loop` (`EstServer`), `stream` (one request read from a handshaken
connection, one response serialized), `table` (who holds the workers: per-address shares,
eviction, refusal warnings), `outcome` (the connection log line and the audit event of a refused
enrollment), `http11` (HTTP/1.1 framing: bytes in, `HttpRequest` out, no sockets), `proxyproto`
(the PROXY v1/v2 header parser, no sockets), `workers` (threads that accept for themselves),
`proxied` (reading the PROXY header off the socket), `system` (listening socket, sd_notify),
`exporter` (the Prometheus HTTP listener).
"""

from python_est.server.exporter import MetricsListener
from python_est.server.loop import EstServer, Handshaker
from python_est.server.plain import PlainHandshaker
from python_est.server.system import Listener, bind_listener, notify_systemd

__all__ = [
    "EstServer",
    "Handshaker",
    "Listener",
    "MetricsListener",
    "PlainHandshaker",
    "bind_listener",
    "notify_systemd",
]
