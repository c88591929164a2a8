"""The tlslite-ng seam table: complete, true for the pinned tlslite, and loud when it is not."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import tlslite

import python_est.tls
from python_est.cli import main
from python_est.config import TlsConfig
from python_est.tls import (
    TlsEndpoint,
    fastsuites,
    openssl_ticket_ciphers,
    tlslite_seams,
    use_openssl_ticket_ciphers,
)
from python_est.tls.tlslite_seams import SEAMS, Seam, TlsliteMismatch, Use, check_tlslite
from tests.tls_support import Pki, make_pki

PACKAGE = Path(__file__).resolve().parents[2] / "python_est"
# Class attributes every class has; they override nothing of tlslite's.
_CLASS_BOOKKEEPING = {
    "__module__",
    "__doc__",
    "__qualname__",
    "__annotations__",
    "__dict__",
    "__weakref__",
    "__firstlineno__",
    "__static_attributes__",
    "__parameters__",
    "__orig_bases__",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _endpoint(pki: Pki, *, accelerated: bool = True) -> TlsEndpoint:
    return TlsEndpoint(
        cert_chain=pki.server_chain,
        private_key=pki.server_key,
        verifier_db=None,
        chain_validator=None,
        params=TlsConfig(),
        accelerated=accelerated,
    )


def _owner(seam: Seam) -> object:
    module, _, cls = seam.owner.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


def _without(name: str) -> tuple[Seam, ...]:
    kept = tuple(seam for seam in SEAMS if seam.name != name)
    assert len(kept) < len(SEAMS)
    return kept


def test_the_pinned_tlslite_has_every_seam() -> None:
    assert tlslite.__version__ == tlslite_seams.TLSLITE_VERSION
    assert list(tlslite_seams.seam_problems(SEAMS)) == []
    check_tlslite()


def test_a_renamed_method_fails_with_one_line(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    renamed = tuple(
        dataclasses.replace(seam, name="_getMessage") if seam.name == "_getMsg" else seam
        for seam in SEAMS
    )
    monkeypatch.setattr(tlslite_seams, "SEAMS", renamed)
    expected = (
        "tlslite-ng 0.8.2 does not match python_est: TLSConnection._getMessage is missing "
        f"({Use.HANDSHAKE.value})"
    )
    with pytest.raises(TlsliteMismatch) as caught:
        check_tlslite()
    assert str(caught.value) == expected
    # Endpoint construction is where serve, reloads and tests meet the check.
    with pytest.raises(ValueError) as refused:
        _endpoint(pki)
    assert str(refused.value) == expected


def test_changed_parameters_fail_and_the_others_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    changed = [
        Seam(Use.KEY_EXCHANGE, "tlslite.tlsconnection:TLSConnection", "_getKEX", ("group",)),
        Seam(Use.RECORD_LAYER, "tlslite.tlsconnection:TLSConnection", "_recordLayr", probe=(None,)),
        Seam(Use.TICKETS, "tlslite.tlsconnection", "createAESGCM", ("key",)),
    ]
    monkeypatch.setattr(tlslite_seams, "SEAMS", (*SEAMS, *changed))
    with pytest.raises(TlsliteMismatch) as caught:
        check_tlslite()
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "tlslite-ng 0.8.2 does not match python_est: TLSConnection._getKEX takes "
        f"(group, version), expected (group) ({Use.KEY_EXCHANGE.value}) (and 2 more)"
    )


def test_a_missing_module_or_instance_attribute_is_reported() -> None:
    problems = list(
        tlslite_seams.seam_problems(
            [
                Seam(
                    Use.HANDSHAKE,
                    "tlslite.tlsconnection:TLSConnection",
                    "_defragmenter.bufs",
                    probe=(None,),
                ),
                Seam(Use.SRP, "tlslite.mathtlsx", "makeX"),
            ]
        )
    )
    assert problems == [
        f"TLSConnection._defragmenter.bufs is missing ({Use.HANDSHAKE.value})",
        f"tlslite.mathtlsx.makeX is missing ({Use.SRP.value})",
    ]


def test_another_tlslite_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tlslite_seams, "TLSLITE_VERSION", "0.8.3")
    with pytest.raises(TlsliteMismatch, match=r"^tlslite-ng 0\.8\.2 is installed; .* 0\.8\.3 "):
        check_tlslite()


def test_serve_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nport = 0\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    monkeypatch.setattr(tlslite_seams, "TLSLITE_VERSION", "0.8.3")
    assert main(["-c", str(cfg), "serve"]) == 2
    err = capsys.readouterr().err  # log lines about the state it created, then the refusal
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "tlslite" in line] == [
        f"python-est: {cfg}: [tls]: tlslite-ng 0.8.2 is installed; python_est hooks the "
        "internals of tlslite-ng 0.8.3 and needs exactly that version"
    ]


def _tlslite_subclasses() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(python_est.tls.__path__, "python_est.tls."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and any(base.__module__.startswith("tlslite") for base in value.__mro__)
            ):
                found.append(value)
    return found


def _unlisted_overrides(seams: tuple[Seam, ...]) -> list[str]:
    listed = {(_owner(seam), seam.name) for seam in seams}
    unlisted = []
    for cls in _tlslite_subclasses():
        tlslite_bases = [b for b in cls.__mro__ if b.__module__.startswith("tlslite")]
        for name in set(vars(cls)) - _CLASS_BOOKKEEPING:
            # A seam names the class we subclass, which may inherit the name from its own base.
            overridden = any(name in vars(base) for base in tlslite_bases)
            if overridden and not any((base, name) in listed for base in tlslite_bases):
                unlisted.append(f"{cls.__name__}.{name}")
    return sorted(unlisted)


def test_every_override_of_a_tlslite_name_is_listed() -> None:
    assert _unlisted_overrides(SEAMS) == []
    assert _unlisted_overrides(_without("_getMsg")) == ["Connection._getMsg"]
    assert _unlisted_overrides(_without("_getKEX")) == ["FastConnection._getKEX"]


def _unlisted_private_names(seams: tuple[Seam, ...]) -> list[str]:
    """`x._name` and `def _name` in modules importing tlslite, where tlslite's classes (or
    their instances) define `_name` too, and no seam lists it: an unlisted reach into tlslite,
    or an attribute of ours that shadows one of tlslite's by accident."""
    private: set[str] = set()
    for seam in seams:
        owner = _owner(seam)
        if inspect.isclass(owner):
            private |= set(dir(owner))
            if seam.probe is not None:
                private |= set(vars(owner(*seam.probe)))
    private = {n for n in private if n.startswith("_") and not n.startswith("__")}
    listed = {part for seam in seams for part in seam.name.split(".")}
    touched = set()
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        if "tlslite" not in source:
            continue  # only modules that import it can reach into it
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and node.attr in private:
                touched.add(node.attr)
            elif isinstance(node, ast.FunctionDef) and node.name in private:
                touched.add(node.name)
    return sorted(touched - listed)


def test_every_private_tlslite_name_we_touch_is_listed() -> None:
    assert _unlisted_private_names(SEAMS) == []
    assert _unlisted_private_names(_without("_sendError")) == ["_sendError"]
    assert _unlisted_private_names(_without("_defragmenter.buffers")) == ["_defragmenter"]


def test_importing_the_package_leaves_tlslite_alone() -> None:
    code = (
        "import python_est.tls, python_est.cli\n"
        "from tlslite import tlsconnection\n"
        "from tlslite.utils import cipherfactory\n"
        "assert tlsconnection.createAESGCM is cipherfactory.createAESGCM\n"
        "assert not python_est.tls.openssl_ticket_ciphers()\n"
        "from python_est.tls import fastsuites\n"
        "assert not fastsuites.cached_suites()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=PACKAGE.parent)


def test_an_accelerated_endpoint_switches_the_ticket_ciphers(pki: Pki) -> None:
    switched = [
        (use_openssl_ticket_ciphers, openssl_ticket_ciphers),
        (fastsuites.use_cached_suites, fastsuites.cached_suites),
    ]
    try:
        for switch, _ in switched:
            switch(False)
        _endpoint(pki, accelerated=False)
        assert not any(state() for _, state in switched)
        _endpoint(pki)
        assert all(state() for _, state in switched)
        _endpoint(pki)  # idempotent
        assert all(state() for _, state in switched)
    finally:
        for switch, _ in switched:
            switch()
