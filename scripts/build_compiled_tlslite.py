#!/usr/bin/env python3
"""Build a Cython-compiled copy of the installed tlslite-ng, for measurement only.

    pip install cython
    python scripts/build_compiled_tlslite.py DIR        # about 10 minutes on 2 cores
    python scripts/bench_tls.py --engine fast --compiled-tlslite DIR --rounds 3

Copies the installed `tlslite` package into DIR/tlslite and compiles each of its modules in
place with Cython (pure-Python mode, no type annotations added: the same source, compiled), so
that a process run with DIR first on its path imports the compiled modules. A module Cython
refuses stays Python (it names them). Nothing here is used by the product: this answers
whether compiling tlslite's own code would reach issue 20's handshake targets
(docs/performance.md, "The handshake").
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="directory to build DIR/tlslite in")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    try:
        # Measurement tools, not dependencies of the project: untyped, and absent unless asked for.
        from Cython.Build import cythonize  # type: ignore[import-not-found]
        from Cython.Compiler.Errors import CompileError  # type: ignore[import-not-found]
        from setuptools import Distribution, Extension  # type: ignore[import-untyped]
    except ImportError as exc:
        print(f"error: {exc.name} is needed: pip install cython setuptools", file=sys.stderr)
        return 2
    import tlslite

    source = Path(tlslite.__file__).parent
    package = args.target / "tlslite"
    if package.exists():
        print(f"error: {package} exists; remove it or choose another directory", file=sys.stderr)
        return 2
    shutil.copytree(source, package, ignore=shutil.ignore_patterns("__pycache__"))
    modules = sorted(p for p in package.rglob("*.py") if p.name != "__init__.py")
    compiled, refused = [], []
    for path in modules:
        name = ".".join(path.relative_to(args.target).with_suffix("").parts)
        try:
            compiled += cythonize(
                [Extension(name, [str(path)])],
                language_level=3,
                quiet=True,
                nthreads=args.jobs,
            )
        except CompileError:
            refused.append(name)
    build = Distribution({"ext_modules": compiled}).get_command_obj("build_ext")
    build.inplace = True
    build.parallel = args.jobs
    build.build_temp = str(args.target / "build")
    os.chdir(args.target)
    build.ensure_finalized()
    build.run()
    print(f"compiled {len(compiled)} of {len(modules)} modules of tlslite {tlslite.__version__}")
    if refused:
        print(f"left as Python (Cython refused them): {', '.join(refused)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
