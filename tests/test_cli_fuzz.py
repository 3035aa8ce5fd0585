"""The command line under fuzz: hypothesis builds argument lists and environment values
for every command (the commands and their options are read from the parser), with wrong
types, huge values, empty strings, odd bytes and unknown flags, and runs each in-process.
No run may end in a traceback: exit 0, 1 or 2, and at most one error line on stderr.

Database commands run against a real scratch database when they are quick, else against
a socket that does not exist, so nothing slow starts (no throwaway server, no verify
suite). ``HARNESS_FUZZ_EXAMPLES`` sets the examples per command (default 25, a few
seconds in all); raise it for a long run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from collections.abc import Iterator

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import env
from harness.cli import build_parser, cli
from harness.cli.deploy import cli_commands

UNREACHABLE = "host=/nonexistent-harness-fuzz-socket dbname=x connect_timeout=1"
# Quick against a real database; the others get the unreachable socket (rollback too:
# its rehearsal builds a scratch database each time; tests/test_rollback_guard.py has it).
REAL_DSN = {
    "migrate",
    "status",
    "break-lock",
    "schema fingerprint",
    "reconcile",
    "partners add",
    "leads import",
    "queue status",
    "queue retry-dead",
    "queue cancel",
    "watch",
}
EXAMPLES = env.read("HARNESS_FUZZ_EXAMPLES")

NASTY = [
    "",
    " ",
    "-",
    "--",
    "0",
    "-1",
    "-3",
    "1.5",
    "1e400",
    "NaN",
    "inf",
    "9" * 5000,
    "x" * 100_000,
    "\x01\x1b[2J",
    "\udcff\udcfe",  # undecodable bytes, as the OS hands them over
    "é∂ƒ",
    ",",
    " , ",
    "'",
    '"',
    "\\",
    "5m",
    "0s",
    "1h30m",
    "atomic",
    "docker",
    "embedded",
    "password='top secret'",
    "postgresql://u:pw@/db?host=/nonexistent",
    "/proc/x.json",
    "/",
    "..",
]
UNKNOWN_FLAGS = ["--no-such-flag", "-Z", "--dsn=", "--json=", "--help-me", "---"]

text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    max_size=12,
)
values = st.one_of(
    st.sampled_from(NASTY),
    text,
    st.integers(-(10**6), 10**12).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    out = {}
    for command in cli_commands(parser):
        p = parser
        for word in command.split():
            sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = sub.choices[word]
        out[command] = p
    return out


PARSERS = _parsers()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, list[str]]:
    """Files a positional argument may name: real, bad, missing, not a file."""
    tmp = tmp_path_factory.mktemp("fuzz")
    good = tmp / "leads.csv"
    good.write_text("email,industry,state,price\nann@example.com,Finance,CA,2.50\n")
    bad = tmp / "bad.csv"
    bad.write_text("email,price\n\x01,1e400\n")
    toml = tmp / "bad.toml"
    toml.write_text('name = "x"\n[[steps]]\naction = "purchase"\nrepeat = "lots"\n')
    common = [str(tmp / "missing.csv"), str(tmp), "-", ""]
    return {
        "csv": [str(good), str(bad), *common],
        "toml": [str(ROOT / "scenarios" / "emails.toml"), str(toml), str(good), *common],
    }


@st.composite
def invocation(draw, command: str, files: dict[str, list[str]]) -> tuple[list[str], dict]:
    p = PARSERS[command]
    args: list[str] = []
    for action in p._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        kind = "toml" if command.startswith("scenario") else "csv"
        pick = st.sampled_from(files[kind]) if action.dest in ("file", "files") else values
        count = draw(st.integers(0, 2)) if action.nargs == "+" else 1
        args += [draw(pick) for _ in range(count)]
    options = [a for a in p._actions if a.option_strings and a.dest != "help"]
    for action in draw(st.lists(st.sampled_from(options), max_size=4)) if options else []:
        args.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            args.append(draw(values))
    if draw(st.integers(0, 4)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(UNKNOWN_FLAGS)))
    environment = draw(
        st.dictionaries(st.sampled_from(sorted(env.VARIABLES)), st.sampled_from(NASTY), max_size=2)
    )
    return args, environment


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code, out.getvalue(), err.getvalue()


ERROR_LINE = re.compile(r"^harness[\w -]*: error: ")


@pytest.fixture(scope="module")
def real_dsn(admin_dsn, template_db):
    from harness import db as database

    name = database.scratch_name("harness_fuzz")
    dsn = database.create_database(admin_dsn, name, template_db)
    yield dsn
    database.drop_database(admin_dsn, name)


@pytest.fixture
def fenced(tmp_path, monkeypatch):
    """No state of `db start` to fall back on; a state directory `db start` refuses, so
    it never starts a server; no variable of the suite's own environment."""
    shared = tmp_path / "state"
    shared.mkdir()
    shared.chmod(0o777)
    for name in env.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(shared))
    # A fuzzed report path (--json 28) is written relative to here, not into the checkout.
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_no_command_line_ends_in_a_traceback(command, files, real_dsn, fenced):
    has_dsn = any("--dsn" in a.option_strings for a in PARSERS[command]._actions)
    target = real_dsn if command in REAL_DSN else UNREACHABLE

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(invocation(command, files))
    def check(case: tuple[list[str], dict]) -> None:
        args, variables = case
        variables = {k: v for k, v in variables.items() if k != "HARNESS_STATE_DIR"}
        argv = [*command.split(), *args, *(["--dsn", target] if has_dsn else [])]
        with environment(variables):
            code, out, err = run(argv)
        assert "Traceback" not in err and "Traceback" not in out, (argv, variables, err)
        assert code in (0, 1, 2), (argv, variables, code, err)
        errors = [line for line in err.splitlines() if ERROR_LINE.match(line)]
        assert len(errors) <= 1, (argv, variables, err)
        if code == 2:
            assert len(errors) == 1, (argv, variables, err)

    check()
