"""The package's layers, as ``ls harness/`` shows them, and the rule between them: a
module imports only from its own layer or the layers below it, so the bottom (errors,
values, the database) never depends on money, money never on the proofs, and no library
module on the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

PACKAGE = Path(harness.__file__).resolve().parent

# Bottom to top. A module belongs to the layer of the longest prefix naming it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "harness",
            "harness.errors",
            "harness.config",
            "harness.values",
            "harness.env",
            "harness.packaged",
            "harness.sql",
        ),
    ),
    ("db", ("harness.db",)),
    ("outbox", ("harness.outbox",)),
    ("money", ("harness.money",)),
    ("testing", ("harness.testing",)),
    # The pytest plugin drives scenarios and serves the app: a driver, over money.
    ("drivers", ("harness.drivers", "harness.pytest_plugin")),
    ("proofs", ("harness.proofs",)),
    ("cli", ("harness.cli", "harness.__main__")),
]


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{module} belongs to no layer"
    return rank


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every harness module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "harness"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "harness":
                continue
            for alias in node.names:  # `from harness import db` names the module harness.db
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py")
                is_package = PACKAGE.parent / candidate.replace(".", "/")
                found.add(candidate if is_module.exists() or is_package.is_dir() else node.module)
    return found


def violations(files: list[Path]) -> list[str]:
    out = []
    for path in files:
        me = module_name(path)
        for other in sorted(imports(path)):
            if layer_of(other) > layer_of(me):
                out.append(
                    f"{me} ({LAYERS[layer_of(me)][0]}) imports {other} "
                    f"({LAYERS[layer_of(other)][0]})"
                )
    return out


def test_ls_harness_shows_the_layers():
    entries = {p.name for p in PACKAGE.iterdir() if not p.name.startswith("__")}
    assert {"db", "money", "outbox", "proofs", "drivers", "cli", "testing.py"} <= entries


def test_no_module_imports_a_higher_layer():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 40
    assert violations(files) == []


def test_the_layer_check_catches_a_library_module_importing_the_cli(tmp_path):
    bad = PACKAGE / "money" / f"_tmp_layer_probe_{tmp_path.name}.py"
    bad.write_text("def f():\n    from harness.cli import say\n    from harness import cli\n")
    try:
        found = violations([bad])
    finally:
        bad.unlink()
    assert len(found) == 1 and "imports harness.cli" in found[0]


@pytest.mark.parametrize(
    "module, layer",
    [
        ("harness.errors", "base"),
        ("harness.db.servers", "db"),
        ("harness.money.service", "money"),
        ("harness.proofs.verify.checks.rollback", "proofs"),
        ("harness.cli.common", "cli"),
        ("harness.pytest_plugin", "drivers"),
    ],
)
def test_modules_map_to_their_layer(module, layer):
    assert LAYERS[layer_of(module)][0] == layer
