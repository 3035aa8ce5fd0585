"""The README documents every CLI command, check id and error message the code defines
(the lists are derived from the code: harness.cli.build_parser(), the verify registry,
harness.config.DB_MESSAGES and USER_MESSAGES)."""

from __future__ import annotations

from harness.proofs.gate import cli_commands, documentation_gaps


def test_the_command_list_is_derived_from_the_parser():
    commands = cli_commands()
    assert {"migrate", "db start", "schema fingerprint", "gate", "watch"} <= set(commands)


def test_readme_documents_every_command_check_and_message():
    assert documentation_gaps() == {"commands": [], "checks": [], "messages": []}
