"""The webhooks' wiring, and the courier: a thread that delivers the notification outbox.

The thread exists only while there is something to deliver: `wake` starts it when it is not
running, it sleeps until the next entry is due, and it ends once the outbox is empty. So a
server without notifications has no extra thread, and a reload or a stop leaves nothing to
join: a daemon thread still sleeping when the process ends leaves its entries in the outbox,
and the next start delivers them.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

from python_est.config import Config
from python_est.errors import ConfigError
from python_est.ledger import IssuedCertificate, serial_hex
from python_est.statedir import StateDir
from python_est.webhooks import Authorizer, Endpoint, Outbox, WebhookFailure, notification_body
from python_est.webhooks.outbox import Send

log = logging.getLogger("python_est.webhooks")


class Courier:
    """Delivers `outbox` with `send`, in a thread started on demand."""

    def __init__(self, outbox: Outbox, send: Send) -> None:
        self._outbox = outbox
        self._send = send
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Deliver what is due now; start the thread when it is not running."""
        with self._lock:
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="est-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._deliver()
        finally:
            # Whatever ended the loop, the next wake starts a new thread.
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _deliver(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = self._outbox.deliver_due(self._send)
            except OSError as exc:
                # The outbox itself failed (disk full, permissions): say so and look again.
                log.error("notification outbox %s: %s", self._outbox.directory, exc)
                wait = 60.0
            if wait is None:
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
                continue
            self._wake.wait(wait)


def build_webhooks(
    config: Config,
) -> tuple[dict[str, Authorizer], Callable[[IssuedCertificate], None] | None]:
    """Each label's authorization webhook, and what queues issuance notifications (None when
    no label has a `notify_url`). Entries a previous run left in the outbox are sent now.

    Raises:
        ConfigError: a webhook's CA bundle or client certificate cannot be loaded.
    """
    authorizers: dict[str, Authorizer] = {}
    notifiers: dict[str, Endpoint] = {}
    for name, label in config.labels.items():
        try:
            if label.authorize_url:
                authorizers[name] = Authorizer(
                    Endpoint.for_label(label.authorize_url, label),
                    fail_open=label.webhook_failure == "open",
                )
            if label.notify_url:
                notifiers[name] = Endpoint.for_label(label.notify_url, label)
        except ValueError as exc:
            section = f"label:{name}" if name else "profile"
            raise ConfigError(config.source, section, "webhook_ca_file", str(exc)) from None
    if not notifiers:
        return authorizers, None
    outbox = Outbox(StateDir(config.server.state_dir).notify_outbox)

    def send(label: str, body: bytes) -> None:
        endpoint = notifiers.get(label)
        if endpoint is None:
            raise WebhookFailure(f"label {label!r} has no notify_url any more")
        endpoint.post(body, request_id=secrets.token_hex(8))

    courier = Courier(outbox, send)
    if outbox.pending():
        courier.wake()

    def notify(entry: IssuedCertificate) -> None:
        if entry.label not in notifiers:
            return
        try:
            outbox.put(entry.label, notification_body(entry))
        except OSError as exc:
            # The certificate is issued and recorded; a lost notification must not undo that.
            log.error("notification of %s not queued: %s", serial_hex(entry.serial), exc.strerror)
            return
        courier.wake()

    return authorizers, notify
