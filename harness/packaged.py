"""Folders the package ships besides its code: the migrations, the Locust scenarios, the
scenario files and squawk's configuration.

The repository keeps them at the top level (``migrations/``, ``loadtests/``, ``scenarios/``)
where a reader expects them; ``pyproject.toml`` maps each into the package
(``harness.migrations`` and so on), so a wheel carries them inside the package. In a
source checkout (an editable install) they are found where they stand.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError

# The packaged folders, by their name inside the package.
FOLDERS = ("migrations", "loadtests", "scenarios")


def folder(name: str) -> Path:
    """The directory of a packaged folder (a wheel's copy, or the checkout's own)."""
    if name not in FOLDERS:
        raise ValueError(f"not a packaged folder: {name!r}")
    package = Path(__file__).resolve().parent
    for path in (package / name, package.parent / name):  # a wheel's, then a checkout's
        if path.is_dir():
            return path
    raise HarnessError(f"the installed package lacks its {name}/ folder; reinstall harness")


def squawk_config() -> Path:
    """squawk's configuration for the migration set."""
    return Path(__file__).resolve().parent / "db" / "squawk.toml"


def source_checkout() -> Path | None:
    """The harness's own source tree when running from it (an editable install or a
    checkout on ``sys.path``), else None: what only the project's own CI may use."""
    root = Path(__file__).resolve().parent.parent
    if (
        (root / "pyproject.toml").is_file()
        and (root / "tests").is_dir()
        and (root / "harness").is_dir()
    ):
        return root
    return None
