"""Regenerate the committed Python code for the gRPC wire contract ``proto/spooled.proto``.

Usage (from anywhere; paths are resolved relative to the repository)::

    .venv/bin/python scripts/gen_proto.py          # regenerate the committed files in place
    .venv/bin/python scripts/gen_proto.py --check  # exit 1 (naming the stale files) if they are out of date

``proto/spooled.proto`` is the source. The generated files are committed, and
``tests/test_proto_current.py`` runs ``--check`` so a proto edit without regeneration fails the test suite.

What is generated (with ``grpc_tools.protoc``, using the well-known protos bundled with grpcio-tools):

``spooled/transports/grpc/gen/``
    ``spooled_pb2.py`` / ``spooled_pb2.pyi`` (protobuf messages, type stubs) and ``spooled_grpc.py`` (grpclib
    service bases and client stubs, from grpclib's ``protoc-gen-grpclib_python`` plugin). This is the ONE module
    that defines the messages; everything in the process uses it.

``tests/grpcio_gen/``
    ``spooled_pb2_grpc.py`` only: the official grpcio stubs for interop tests. It imports its messages from
    ``spooled.transports.grpc.gen.spooled_pb2`` instead of from a second copy of ``spooled_pb2.py``: two
    modules registering the file ``spooled.proto`` in protobuf's default descriptor pool only coexist while
    their serialized descriptors are byte-identical (identical ones are de-duplicated and even yield the same
    classes; any difference raises "duplicate file name spooled.proto"), so a second copy would add a failure
    mode and nothing else. ``tests/grpcio_gen/__init__.py`` re-exports both modules, so
    ``from tests.grpcio_gen import spooled_pb2, spooled_pb2_grpc`` works.

protoc writes absolute imports (``import spooled_pb2``); they are rewritten to package imports
(``from . import spooled_pb2`` for grpclib, ``from spooled.transports.grpc.gen import spooled_pb2`` for grpcio).

The output is deterministic for a given protoc / grpcio-tools / grpclib version (protoc embeds its version in the
generated code, so upgrading grpcio-tools makes ``--check`` report the files stale until they are regenerated).
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO_FILE = PROTO_DIR / "spooled.proto"

GRPCLIB_DIR = Path("spooled/transports/grpc/gen")  # relative to ROOT
GRPCIO_DIR = Path("tests/grpcio_gen")

GRPCLIB_INIT = '''\
"""Generated from proto/spooled.proto by scripts/gen_proto.py -- do not edit; regenerate instead.

spooled_pb2: the protobuf messages (the only copy in the process); spooled_grpc: grpclib service bases and stubs.
"""
'''

GRPCIO_INIT = '''\
"""Official grpcio stubs for interop tests, generated from proto/spooled.proto by scripts/gen_proto.py.

Do not edit; regenerate instead. The messages are not duplicated here: spooled_pb2 is the application's
spooled.transports.grpc.gen.spooled_pb2 (one registration of spooled.proto in the descriptor pool).
"""

from spooled.transports.grpc.gen import spooled_pb2

from . import spooled_pb2_grpc

__all__ = ["spooled_pb2", "spooled_pb2_grpc"]
'''

# Files this script owns, relative to ROOT.
MANAGED = (
    GRPCLIB_DIR / "__init__.py",
    GRPCLIB_DIR / "spooled_pb2.py",
    GRPCLIB_DIR / "spooled_pb2.pyi",
    GRPCLIB_DIR / "spooled_grpc.py",
    GRPCIO_DIR / "__init__.py",
    GRPCIO_DIR / "spooled_pb2_grpc.py",
)

# (file, absolute import protoc writes, package import it becomes); each must occur exactly once.
REWRITES = (
    (GRPCLIB_DIR / "spooled_grpc.py", "\nimport spooled_pb2\n", "\nfrom . import spooled_pb2\n"),
    (
        GRPCIO_DIR / "spooled_pb2_grpc.py",
        "\nimport spooled_pb2 as spooled__pb2\n",
        "\nfrom spooled.transports.grpc.gen import spooled_pb2 as spooled__pb2\n",
    ),
)


class GenError(Exception):
    pass


def _grpclib_plugin() -> str:
    name = "protoc-gen-grpclib_python"
    # Next to the running interpreter (do not resolve symlinks: a venv's python links to the base interpreter).
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise GenError(f"{name} not found next to {sys.executable} or on PATH (pip install 'grpclib[protobuf]')")


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc  # noqa: PLC0415  (only needed here)

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    argv = ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{well_known}", *args, str(PROTO_FILE)]
    rc = protoc.main(argv)
    if rc != 0:
        raise GenError(f"protoc failed (exit {rc}): {' '.join(argv)}")


def generate(out_root: Path) -> None:
    """Write every MANAGED file under out_root (a repository root or an empty temp dir)."""
    with tempfile.TemporaryDirectory(prefix="gen_proto_") as tmp:
        raw_grpclib = Path(tmp) / "grpclib"
        raw_grpcio = Path(tmp) / "grpcio"
        raw_grpclib.mkdir()
        raw_grpcio.mkdir()
        _protoc([
            f"--plugin=protoc-gen-grpclib_python={_grpclib_plugin()}",
            f"--python_out={raw_grpclib}",
            f"--pyi_out={raw_grpclib}",
            f"--grpclib_python_out={raw_grpclib}",
        ])
        # grpcio's plugin is built into grpc_tools.protoc; its own spooled_pb2.py is not kept (see docstring).
        _protoc([f"--grpc_python_out={raw_grpcio}"])

        produced: dict[Path, bytes] = {
            GRPCLIB_DIR / "__init__.py": GRPCLIB_INIT.encode(),
            GRPCIO_DIR / "__init__.py": GRPCIO_INIT.encode(),
        }
        for rel in MANAGED:
            if rel in produced:
                continue
            src = (raw_grpclib if rel.parent == GRPCLIB_DIR else raw_grpcio) / rel.name
            if not src.is_file():
                raise GenError(f"protoc did not produce {src.name}")
            produced[rel] = src.read_bytes()

    for rel, old, new in REWRITES:
        text = produced[rel].decode()
        if text.count(old) != 1:
            raise GenError(f"expected exactly one {old.strip()!r} in generated {rel}; generator output changed?")
        produced[rel] = text.replace(old, new).encode()

    for rel, data in produced.items():
        dest = out_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def _strays(root: Path) -> list[Path]:
    """Generated-looking files in the output dirs that this script does not produce (e.g. an old spooled_pb2.py)."""
    out = []
    for d in (GRPCLIB_DIR, GRPCIO_DIR):
        if (root / d).is_dir():
            out += [p.relative_to(root) for p in (root / d).glob("spooled*.py*") if p.relative_to(root) not in MANAGED]
    return sorted(out)


def check() -> int:
    with tempfile.TemporaryDirectory(prefix="gen_proto_check_") as tmp:
        generate(Path(tmp))
        stale = [rel for rel in MANAGED
                 if not (ROOT / rel).is_file() or (ROOT / rel).read_bytes() != (Path(tmp) / rel).read_bytes()]
    strays = _strays(ROOT)
    if stale or strays:
        print("gRPC generated code is out of date with proto/spooled.proto:", file=sys.stderr)
        for rel in stale:
            print(f"  stale or missing: {rel}", file=sys.stderr)
        for rel in strays:
            print(f"  not generated by this script (remove it): {rel}", file=sys.stderr)
        print("Run: python scripts/gen_proto.py", file=sys.stderr)
        return 1
    print(f"gRPC generated code is current ({len(MANAGED)} files).")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temp dir and compare byte-for-byte; exit 1 if anything is stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            return check()
        generate(ROOT)
        for rel in _strays(ROOT):
            (ROOT / rel).unlink()
            print(f"removed stray {rel}")
        for rel in MANAGED:
            print(f"wrote {rel}")
        return 0
    except GenError as exc:
        print(f"gen_proto: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
