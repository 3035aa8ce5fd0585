"""The documentation (README.md and docs/) names every CLI command, check id and error
message the code defines (the lists are derived from the code: the parser, the verify
registry, harness.config's messages); every relative link resolves; the table of
environment variables is the one harness.env declares."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT

from harness import env
from harness.cli import build_parser
from harness.cli.deploy import cli_commands
from harness.proofs.gate import documentation, documentation_gaps

LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted(ROOT.glob("*/README.md")),
    *sorted(ROOT.glob("examples/*/README.md")),
]


def test_the_command_list_is_derived_from_the_parser():
    commands = cli_commands(build_parser())
    assert {"migrate", "db start", "schema fingerprint", "gate", "watch"} <= set(commands)


def test_the_documentation_names_every_command_check_and_message():
    gaps = documentation_gaps(cli_commands(build_parser()), ROOT)
    assert gaps == {"commands": [], "checks": [], "messages": []}


def test_a_missing_command_is_a_gap():
    text = documentation(ROOT).replace("harness migrate", "harness m-i-g-r-a-t-e")
    gaps = documentation_gaps(cli_commands(build_parser()), text=text)
    assert gaps["commands"] == ["migrate"]


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


def _prose(text: str) -> str:
    """The text with fenced code blocks and inline code blanked."""
    out, fenced = [], False
    for line in text.split("\n"):
        if re.match(r"^\s*(```|~~~)", line):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else re.sub(r"`[^`]*`", "``", line))
    return "\n".join(out)


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def dangling_links(pages: list[Path]) -> list[str]:
    bad = []
    for page in pages:
        for m in LINK.finditer(_prose(page.read_text())):
            target = m.group(2)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            path, _, fragment = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not dest.exists():
                bad.append(f"{where}: no such file")
            elif fragment and (
                dest.suffix != ".md"
                or _slug(fragment)
                not in {
                    _slug(line.lstrip("#"))
                    for line in _prose(dest.read_text()).splitlines()
                    if line.startswith("#")
                }
            ):
                bad.append(f"{where}: no such heading")
    return bad


def test_every_relative_link_resolves():
    assert len(PAGES) > 10
    assert dangling_links(PAGES) == []


def test_the_link_check_finds_a_dangling_link(tmp_path):
    page = ROOT / "docs" / "verify.md"
    broken = tmp_path / "page.md"
    broken.write_text("[a](no-such-file.md) and [b](#no-such-heading)\n")
    # dangling_links names pages relative to ROOT: check a copy placed beside the docs.
    twin = page.parent / f"_tmp_{tmp_path.name}.md"
    twin.write_text(broken.read_text())
    try:
        assert len(dangling_links([twin])) == 2
    finally:
        twin.unlink()


def test_the_variables_table_in_the_docs_is_the_declared_one():
    text = (ROOT / "docs" / "cli.md").read_text()
    assert env.table() in text, (
        "regenerate: python -c 'from harness import env; print(env.table())'"
    )
