"""The layer rules of DESIGN.md, checked by walking every import in the package.

Every file counts, `__init__.py` files included, and relative imports are resolved to the
module they name, so no arrow can hide in a package's front door or behind a leading dot.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python_est"

# DESIGN.md's L0..L5, refined: L0 splits into 0 (errors, oids) and 1 (small shared values), so
# every arrow points strictly down and siblings never import each other.
LAYERS: dict[str, int] = {
    "__init__": 0,  # the package's own front door: the version, nothing else
    "errors": 0,
    "oids": 0,
    "safetext": 0,
    "audit": 0,
    "keys": 1,
    "profile": 1,
    "fileio": 1,
    "messages": 1,
    "pgsql": 1,
    "usernames": 1,
    "statedir": 1,
    "wire": 2,
    "config": 2,
    "ca": 2,
    "ledger": 2,
    "users": 2,
    "devices": 2,
    "ratelimit": 2,
    "ticketkeys": 2,
    "keks": 2,
    "policy": 3,
    "backends": 3,
    "state": 3,
    "webhooks": 3,
    "service": 4,
    "routes": 4,
    "tls": 4,
    "server": 5,
    "bootstrap": 5,
    "ops": 5,
    "client": 5,
    "app": 6,
    "cli": 7,
    "__main__": 8,
}
TLSLITE_ALLOWED = {"tls", "users", "client"}
# The ClientHello peek needs MSG_PEEK (tls); the client library opens its own connections.
SOCKET_ALLOWED = {"server", "tls", "client"}
SOCKET_MODULES = {"socket", "socketserver", "selectors", "http.server", "wsgiref.simple_server"}
THREAD_ALLOWED = {"server"}
# Calls that start a thread (or a pool of them); locks and events are fine anywhere.
THREAD_STARTERS = {
    "Thread",
    "Timer",
    "ThreadPoolExecutor",
    "start_new_thread",
    "start_http_server",
    "start_wsgi_server",
}
SYS_EXIT_ALLOWED = {"cli", "__main__"}  # `python -m python_est` hands main()'s status on


def _module_name(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _package_of(path: Path) -> list[str]:
    """The dotted package a file's relative imports are relative to."""
    return ["python_est", *path.relative_to(PACKAGE).parent.parts]


def _imports(tree: ast.AST, package: list[str] | None = None) -> list[str]:
    """Every module `tree` imports, absolute; relative imports resolved against `package`."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert package is not None and node.level <= len(package), "relative import"
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.append(module)
            # `from pkg import name` may name a submodule: count it as one.
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _parsed(path: Path) -> tuple[str, list[str], ast.AST]:
    tree = ast.parse(path.read_text())
    return _module_name(path), _imports(tree, _package_of(path)), tree


def _wrong_arrows(own: str, imported: list[str]) -> list[str]:
    wrong = []
    for name in imported:
        parts = name.split(".")
        if parts[0] != "python_est" or len(parts) < 2:
            continue
        target = parts[1]
        if target not in LAYERS:
            continue  # `from python_est import x` where x is a name, not a module
        if target != own and LAYERS[target] >= LAYERS[own]:
            wrong.append(f"{own} (L{LAYERS[own]}) imports {target} (L{LAYERS[target]})")
    return wrong


def test_every_module_has_a_layer() -> None:
    unknown = sorted({_module_name(p) for p in _sources()} - LAYERS.keys())
    assert unknown == []


def test_imports_only_point_down() -> None:
    wrong = []
    for path in _sources():
        own, imported, _ = _parsed(path)
        wrong += _wrong_arrows(own, imported)
    assert sorted(set(wrong)) == []


def test_relative_and_front_door_imports_are_resolved() -> None:
    # A relative import in a package (`from ..server import x` in ops/endpoints.py) resolves
    # to the module it names, and an upward one is caught like an absolute one.
    ops_file = PACKAGE / "ops" / "endpoints.py"
    tree = ast.parse("from ..server import EstServer\nfrom . import health\n")
    imported = _imports(tree, _package_of(ops_file))
    assert "python_est.server" in imported and "python_est.ops.health" in imported
    assert set(_wrong_arrows("ops", imported)) == {"ops (L5) imports server (L5)"}
    init = _imports(ast.parse("from .loop import EstServer\n"), _package_of(PACKAGE / "x.py"))
    assert init[0] == "python_est.loop"


def test_tlslite_stays_in_its_modules() -> None:
    offenders = set()
    for path in _sources():
        own, imported, _ = _parsed(path)
        if any(n.split(".")[0] == "tlslite" for n in imported):
            offenders.add(own)
    assert sorted(offenders - TLSLITE_ALLOWED) == []


def test_only_server_tls_and_client_touch_sockets() -> None:
    offenders = set()
    for path in _sources():
        own, imported, _ = _parsed(path)
        if SOCKET_MODULES & set(imported):
            offenders.add(own)
    assert sorted(offenders - SOCKET_ALLOWED) == []


def _starts_threads(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in THREAD_STARTERS:
                return True
    return False


def test_only_server_starts_threads() -> None:
    offenders = {own for own, _, tree in map(_parsed, _sources()) if _starts_threads(tree)}
    assert sorted(offenders - THREAD_ALLOWED) == []


def test_the_thread_check_sees_each_way_of_starting_one() -> None:
    for source in (
        "import threading\nthreading.Thread(target=f).start()\n",
        "from concurrent.futures import ThreadPoolExecutor\nThreadPoolExecutor(4)\n",
        "from prometheus_client import start_http_server\nstart_http_server(9464)\n",
    ):
        assert _starts_threads(ast.parse(source))
    assert not _starts_threads(ast.parse("import threading\nlock = threading.Lock()\n"))


def test_only_cli_exits() -> None:
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "exit"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                offenders.append(_module_name(path))
    assert set(offenders) <= SYS_EXIT_ALLOWED
