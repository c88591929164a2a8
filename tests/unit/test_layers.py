"""The layer rules of DESIGN.md, checked by walking every import in the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python_est"

# DESIGN.md's L0..L5, refined: L0 splits into 0 (errors, oids) and 1 (small shared values), so
# every arrow points strictly down and siblings never import each other.
LAYERS: dict[str, int] = {
    "errors": 0,
    "oids": 0,
    "safetext": 0,
    "keys": 1,
    "profile": 1,
    "fileio": 1,
    "messages": 1,
    "pgsql": 1,
    "usernames": 1,
    "statedir": 1,
    "wire": 2,
    "http11": 2,
    "config": 2,
    "ca": 2,
    "ledger": 2,
    "users": 2,
    "ratelimit": 2,
    "proxyproto": 2,
    "metrics": 2,
    "policy": 3,
    "state": 3,
    "revocation": 3,
    "service": 4,
    "routes": 4,
    "tls": 4,
    "server": 5,
    "bootstrap": 5,
    "ops": 5,
    "app": 6,
    "cli": 7,
    "client": 5,
}
TLSLITE_ALLOWED = {"tls", "users", "client"}
SOCKET_ALLOWED = {"server", "tls", "client"}
SYS_EXIT_ALLOWED = {"cli"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.module == "python_est":
                names.extend(f"python_est.{alias.name}" for alias in node.names)
    return names


def _sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.name not in {"__init__.py", "__main__.py"}]


def test_every_module_has_a_layer() -> None:
    unknown = sorted({_module_name(p) for p in _sources()} - LAYERS.keys())
    assert unknown == []


def test_imports_only_point_down() -> None:
    wrong = []
    for path in _sources():
        own = _module_name(path)
        for name in _imports(ast.parse(path.read_text())):
            if not name.startswith("python_est."):
                continue
            target = name.split(".")[1]
            if target == own:
                continue
            if LAYERS[target] >= LAYERS[own]:
                wrong.append(f"{own} (L{LAYERS[own]}) imports {target} (L{LAYERS[target]})")
    assert wrong == []


def test_tlslite_stays_in_its_modules() -> None:
    offenders = sorted(
        {
            _module_name(p)
            for p in _sources()
            if any(n.split(".")[0] == "tlslite" for n in _imports(ast.parse(p.read_text())))
        }
        - TLSLITE_ALLOWED
    )
    assert offenders == []


def test_only_server_and_client_touch_sockets_and_threads() -> None:
    offenders = sorted(
        {
            _module_name(p)
            for p in _sources()
            if {"socket", "socketserver", "selectors"} & set(_imports(ast.parse(p.read_text())))
        }
        - SOCKET_ALLOWED
    )
    assert offenders == []


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
