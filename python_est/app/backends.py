"""The issuing backends of the labels that do not use the embedded CA (`[label:NAME] backend`)."""

from __future__ import annotations

from python_est.backends import Backend, EstBackend, HandlerBackend, HandlerLoadError, PollStore
from python_est.client.upstream import upstream_exchange, upstream_name
from python_est.config import Config
from python_est.errors import ConfigError


def build_backends(config: Config, polls: PollStore) -> dict[str, Backend]:
    """The issuing backend of every label that does not use the embedded CA; `polls` keeps
    a CA handler's poll identifiers (the state's ledger).

    Raises:
        ConfigError: a handler file does not load, or an upstream's files cannot be read.
    """
    backends: dict[str, Backend] = {}
    for name, label in config.labels.items():
        section = f"label:{name}" if name else "profile"
        if label.backend == "est":
            try:
                exchange = upstream_exchange(label, config.source)
            except (OSError, ValueError) as exc:
                raise ConfigError(config.source, section, "upstream_ca_file", str(exc)) from None
            backends[name] = EstBackend(exchange, upstream_name(label))
        elif label.backend == "handler" and label.handler_file is not None:
            try:
                backends[name] = HandlerBackend(
                    label.handler_file,
                    dict(label.handler_options),
                    label=name,
                    retry_after=config.server.pending_retry_after,
                    polls=polls,
                )
            except HandlerLoadError as exc:
                raise ConfigError(config.source, section, "handler_file", str(exc)) from None
    return backends
