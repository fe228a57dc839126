"""The architecture holds as the README draws it: a pure core, and edges that are the only
importers of what they are the edge of. Imports are read with ``ast``, so a name in a comment
or a string does not count and a lazy import inside a function does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

GATEWAY = REPO / "gateway"
EDGES = {
    "grpc": ("gateway/server/", "gateway/clients/", "gateway/wire.py"),
    "grpc_health": ("gateway/server/", "gateway/clients/"),
    "grpc_reflection": ("gateway/server/",),
    "google.protobuf": ("gateway/server/", "gateway/clients/", "gateway/wire.py"),
    "gateway._generated": ("gateway/server/", "gateway/clients/", "gateway/wire.py"),
    "cryptography": ("gateway/crypto/",),
    "sqlite3": ("gateway/storage/",),
    "sqlite_utils": ("gateway/storage/",),
    "aiohttp": ("gateway/clients/", "gateway/web/"),
    "zxingcpp": ("gateway/web/images.py",),
    "PIL": ("gateway/web/images.py",),
    "segno": ("gateway/qr.py",),
    "prometheus_client": ("gateway/server/metrics.py",),
}
"""Who may import each library: everyone else reaches it through these modules."""


def _modules() -> list[tuple[str, Path]]:
    return sorted(
        (str(path.relative_to(REPO)), path)
        for path in GATEWAY.rglob("*.py")
        if "_generated" not in path.parts
    )


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _covers(library: str, name: str) -> bool:
    return name == library or name.startswith(library + ".")


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_each_library_is_imported_only_by_its_edge(name, path):
    for library, allowed in EDGES.items():
        if name.startswith(allowed):
            continue
        found = sorted(i for i in _imports(path) if _covers(library, i))
        assert not found, f"{name} imports {found}: only {', '.join(allowed)} may"


def test_the_codecs_need_nothing_from_crypto():
    """The cycle codecs <-> crypto is broken for good: crypto implements what the codecs name."""
    codecs = [p for n, p in _modules() if n.startswith("gateway/codecs/")]
    assert len(codecs) > 5
    for path in codecs:
        assert not any(_covers("gateway.crypto", i) for i in _imports(path)), path.name


def test_the_core_reads_no_clock():
    core = ("gateway/codecs/", "gateway/registry/", "gateway/profiles/", "gateway/policy/")
    checked = [name for name, _ in _modules() if name.startswith(core)]
    assert len(checked) > 10
    for name, path in _modules():
        if name.startswith(core):
            assert "gateway.clock.system_clock" not in _imports(path), name


def test_package_init_files_only_re_export():
    for name, path in _modules():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in tree.body:
            allowed = (ast.Import, ast.ImportFrom, ast.Expr, ast.Assign, ast.AnnAssign)
            assert isinstance(node, allowed), f"{name} defines {type(node).__name__}"
            if isinstance(node, ast.Expr):
                assert isinstance(node.value, ast.Constant), f"{name}: a statement"
