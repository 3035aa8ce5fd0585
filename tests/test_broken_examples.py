"""The known-bad examples are what their manifests generate (harness/proofs/variants.py):
the committed SQL and the README table match the generator, every replacement occurs
exactly once in its base, and each generated function differs from the released one by
the manifest's replacements and nothing else. No database needed."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from conftest import ROOT

from harness.proofs import variants
from harness.proofs.variants import ManifestError, all_variants, drift, extract, render

EXAMPLES = ROOT / "examples" / "broken"
VARIANTS = all_variants(EXAMPLES)
GENERATED = [v for v in VARIANTS if v.generated]
WITH_FUNCTIONS = [v for v in GENERATED if v.functions]


def ids(v: variants.Variant) -> str:
    return v.name


def copied(v: variants.Variant, side: str = "forward") -> str:
    """The variant's functions as the migrations it copies (or, for the rollback, restores)
    create them, each from its own source."""
    found = variants.sources(v, ROOT, copy=side == "forward")
    return "\n\n".join(extract((ROOT / found[f]).read_text(), f).text for f in v.functions)


def grants_of(v: variants.Variant, side: str) -> list[str]:
    found = variants.sources(v, ROOT, copy=side == "forward")
    return [g for f in v.functions for g in extract((ROOT / found[f]).read_text(), f).grants]


# -- (a) the committed files are what the generator makes ---------------------------------


def test_committed_sql_and_readme_table_are_as_generated():
    problems = drift(EXAMPLES, ROOT)
    assert problems == [], "\n".join(problems)


def test_check_command_passes_on_the_committed_examples(capsys):
    assert variants.main(["--check", str(EXAMPLES), "--root", str(ROOT)]) == 0
    assert "are as generated" in capsys.readouterr().out


def test_every_example_directory_has_a_manifest():
    dirs = {p for p in EXAMPLES.iterdir() if p.is_dir()}
    assert dirs == {v.directory for v in VARIANTS if v.directory.parent == EXAMPLES}
    assert any(v.name == "../seed_as_written" and not v.generated for v in VARIANTS)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The migrations and examples, copied: a repository to break."""
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_drift_names_a_hand_edited_file_and_write_repairs_it(repo_copy, capsys):
    examples = repo_copy / "examples" / "broken"
    target = examples / "off_by_one" / "0100_off_by_one.sql"
    target.write_text(target.read_text().replace("<=", "<"))
    assert drift(examples, repo_copy) == [
        "examples/broken/off_by_one/0100_off_by_one.sql: it differs from what the manifests "
        f"generate (run {variants.COMMAND})"
    ]
    assert variants.main(["--check", str(examples), "--root", str(repo_copy)]) == 1
    assert "examples/broken/off_by_one/0100_off_by_one.sql" in capsys.readouterr().err
    assert variants.write(examples, repo_copy) == [target]
    assert drift(examples, repo_copy) == []


def test_a_change_to_the_released_migration_shows_as_drift_in_every_copy(repo_copy):
    (base,) = {
        variants.sources(v, ROOT)["purchase_with_credits"]
        for v in WITH_FUNCTIONS
        if "purchase_with_credits" in v.functions
    }
    migration = repo_copy / str(base)
    migration.write_text(
        migration.read_text().replace(
            "-- Guarantees: on success the balance", "-- Guarantees: on success, the balance"
        )
    )
    drifted = {line.split(":")[0] for line in drift(repo_copy / "examples" / "broken", repo_copy)}
    copies = {
        f"examples/broken/{v.name}/{name}"
        for v in WITH_FUNCTIONS
        if "purchase_with_credits" in v.functions
        for name in render(v, ROOT)
        if v.restore or not name.endswith(".rollback.sql")
    }
    assert "examples/broken/no_row_lock/0100_no_row_lock.rollback.sql" in copies
    assert drifted == copies


def test_each_function_is_copied_as_the_migrations_up_to_the_base_leave_it(tmp_path):
    (no_row_lock,) = [v for v in VARIANTS if v.name == "no_row_lock"]
    assert variants.sources(no_row_lock, ROOT) == {
        "purchase_with_credits": "migrations/0006_faster_money_functions.sql",
        "purchase_leads_atomic": "migrations/0010_refusal_at_one_moment.sql",
    }
    older = write_manifest(
        tmp_path / "older",
        MANIFEST.replace("0002_atomic_credit_purchase", "0005_harden_money_functions").replace(
            '"purchase_with_credits"', '"purchase_leads_atomic"'
        ),
    )
    assert variants.sources(variants.load(older), ROOT) == {
        "purchase_leads_atomic": "migrations/0005_harden_money_functions.sql"
    }


def test_copy_from_copies_an_older_version_and_the_rollback_restores_the_base_level():
    (late,) = [v for v in VARIANTS if v.name == "atomic_refusal_balance_read_late"]
    assert late.copy_from == "migrations/0006_faster_money_functions.sql"
    assert variants.sources(late, ROOT) == {"purchase_leads_atomic": late.copy_from}
    assert variants.sources(late, ROOT, copy=False) == {
        "purchase_leads_atomic": "migrations/0010_refusal_at_one_moment.sql"
    }
    files = render(late, ROOT)
    forward = extract(files[f"{late.stem}.sql"], "purchase_leads_atomic").statement
    restored = extract(files[f"{late.stem}.rollback.sql"], "purchase_leads_atomic").statement
    assert "RAISE EXCEPTION 'Insufficient credits'" in forward
    assert "SQLSTATE 'HM001'" in restored and "SQLSTATE 'HM001'" not in forward


def test_drift_covers_the_readme_table_and_stray_sql(repo_copy):
    examples = repo_copy / "examples" / "broken"
    readme = examples / "README.md"
    readme.write_text(readme.read_text().replace("| `off_by_one` |", "| `off-by-one` |"))
    stray = examples / "no_row_lock" / "0101_extra.sql"
    stray.write_text("SELECT 1;\n")
    assert drift(examples, repo_copy) == [
        "examples/broken/README.md: the generated table differs from what the manifests "
        f"generate (run {variants.COMMAND})",
        "examples/broken/no_row_lock/0101_extra.sql: not generated by its manifest (remove "
        "it, or name it in the manifest's stem)",
    ]


# -- (b) every replacement occurs exactly once in its base --------------------------------


@pytest.mark.parametrize("v", [v for v in GENERATED if v.replace], ids=ids)
def test_every_replacement_occurs_exactly_once_in_its_base(v):
    for r in v.replace:
        assert copied(v, r.target).count(r.old) == 1, (v.name, r.old)
        assert r.old != r.new, (v.name, r.old)


def write_manifest(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "manifest.toml").write_text(text)
    return directory


MANIFEST = """
description = "a test"
base = "migrations/0002_atomic_credit_purchase.sql"
functions = ["purchase_with_credits"]
only = "contract"
must_fail = ["contract.exact-balance"]
"""


def test_a_replacement_that_does_not_match_is_a_clear_error(tmp_path):
    example = write_manifest(
        tmp_path / "bad",
        MANIFEST
        + """
[[replace]]
old = "  IF v_balance < p_credit_used THEN\\n"
new = "  IF v_balance <= p_credit_used THEN\\n"
""",
    )
    with pytest.raises(ManifestError) as error:
        render(variants.load(example), ROOT)
    message = str(error.value)
    assert message.startswith(f"{example / 'manifest.toml'}: [[replace]] #1 (forward)")
    assert (
        "occurs 0 times in the forward copy of purchase_with_credits from "
        "migrations/0002_atomic_credit_purchase.sql, not exactly once" in message
    )
    assert "'IF v_balance < p_credit_used THEN'" in message


def test_a_replacement_that_matches_twice_is_an_error(tmp_path):
    example = write_manifest(
        tmp_path / "twice",
        MANIFEST
        + """
[[replace]]
old = "    RETURN;\\n"
new = ""
""",
    )
    with pytest.raises(ManifestError, match=r"#1 \(forward\): its old text occurs \d+ times"):
        render(variants.load(example), ROOT)


@pytest.mark.parametrize(
    "extra, message",
    [
        ('colour = "red"\n', "unknown key(s): colour"),
        ('functions = ["no_such_function"]\n', "has 0 CREATE FUNCTION no_such_function(...)"),
        ('[[replace]]\nold = "x"\nnew = "y"\nin = "sideways"\n', "[[replace]] #1 needs"),
    ],
)
def test_a_bad_manifest_is_refused_naming_it(tmp_path, extra, message):
    text = (
        MANIFEST.replace('functions = ["purchase_with_credits"]\n', "")
        if extra.startswith("functions")
        else MANIFEST
    )
    example = write_manifest(tmp_path / "x", text + extra)
    with pytest.raises(ManifestError) as error:
        render(variants.load(example), ROOT)
    assert str(error.value).startswith(str(example / "manifest.toml"))
    assert message in str(error.value)


# -- (c) each generated function is its base plus the manifest's replacements -------------


def replaced_lines(text: str, olds: list[str]) -> set[int]:
    """The line numbers of ``text`` a diff may show changed when each ``old`` is replaced:
    the lines it covers, the next one (an insertion lands before it), and the one before
    when it equals the last covered line (a diff may delete that one instead)."""
    lines = text.splitlines()
    out: set[int] = set()
    for old in olds:
        first = text.count("\n", 0, text.index(old))
        last = first + max(old.count("\n"), 1) - 1
        out.update(range(first, last + 2))
        if first > 0 and lines[first - 1] == lines[last]:
            out.add(first - 1)
    return out


def changed_base_lines(base: str, generated: str) -> set[int]:
    matcher = difflib.SequenceMatcher(
        None, base.splitlines(), generated.splitlines(), autojunk=False
    )
    out: set[int] = set()
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag != "equal":
            out.update(range(i1, i2) if i2 > i1 else [i1])  # an insertion: the line after
    return out


def expected_copy(base: str, replacements: list[variants.Replacement]) -> str:
    for r in replacements:
        assert base.count(r.old) == 1
        base = base.replace(r.old, r.new)
    return base


@pytest.mark.parametrize("v", WITH_FUNCTIONS, ids=ids)
@pytest.mark.parametrize("side", ["forward", "rollback"])
def test_each_generated_function_differs_from_its_base_by_exactly_the_replacements(v, side):
    name = f"{v.stem}.rollback.sql" if side == "rollback" else f"{v.stem}.sql"
    if side == "rollback" and not v.restore:
        assert "CREATE OR REPLACE FUNCTION" not in (v.directory / name).read_text()
        return
    committed = (v.directory / name).read_text()
    base = copied(v, side)
    copy = "\n\n".join(extract(committed, f, name).text for f in v.functions)
    edits = v.replacements(side)
    assert copy == expected_copy(base, edits)
    changed = changed_base_lines(base, copy)
    allowed = replaced_lines(base, [r.old for r in edits])
    assert changed <= allowed, (v.name, side, sorted(changed - allowed))
    assert bool(changed) == bool(edits)
    if v.grants:
        for grant in grants_of(v, side):
            assert grant in committed, (v.name, side, grant)


def test_a_grant_naming_several_functions_is_copied_for_the_one_function():
    fn = extract((ROOT / "migrations/0004_purchase_flow.sql").read_text(), "reconcile_purchase")
    assert fn.grants == (
        "REVOKE EXECUTE ON FUNCTION reconcile_purchase(uuid, jsonb) FROM PUBLIC, anon, "
        "authenticated;",
        "GRANT EXECUTE ON FUNCTION reconcile_purchase(uuid, jsonb) TO service_role;",
    )
    assert fn.comment.startswith("-- Guarantees: a pending purchase whose items match")
    assert fn.statement.startswith("CREATE FUNCTION reconcile_purchase(")
    assert fn.statement.endswith("END;\n$$;")


def test_the_generated_files_say_they_are_generated():
    for v in GENERATED:
        for name, text in render(v, ROOT).items():
            assert "do not edit" in text.split("\n\n")[0], (v.name, name)
            if not name.endswith(".rollback.sql"):
                assert text.startswith(f"-- depends: {v.depends or Path(v.base).stem}\n")


def test_an_overload_is_picked_by_its_number_of_arguments():
    """0005 creates add_credits twice (with and without a payment reference): a bare name
    is ambiguous, ``add_credits/4`` picks the one, its grants included."""
    text = (ROOT / "migrations/0005_harden_money_functions.sql").read_text()
    with pytest.raises(ValueError, match="2 CREATE FUNCTION add_credits"):
        extract(text, "add_credits")
    four, three = extract(text, "add_credits/4"), extract(text, "add_credits/3")
    assert "p_payment_reference text" in four.statement
    assert "p_payment_reference" not in three.statement.split("AS $$")[0]
    assert four.grants and all("(uuid, numeric, text, text)" in g for g in four.grants)
    assert all("(uuid, numeric, text)" in g for g in three.grants)  # granted in 0001
    with pytest.raises(ValueError, match="0 CREATE FUNCTION add_credits/2"):
        extract(text, "add_credits/2")
