"""Known-bad migration sets generated from small manifests.

Each ``examples/broken/<x>/manifest.toml`` names the released migration the example is
derived from, the functions it copies whole from it, the replacements that introduce the
defect and the checks that must fail. :func:`render` writes the example's SQL from it:

* ``<stem>.sql``: a header (generated, do not edit; ``-- depends:``; what is wrong), then
  the manifest's ``forward_sql``, then ``CREATE OR REPLACE`` copies of the named functions
  (each with the comment block above it in the base) with the ``[[replace]]`` edits
  applied, then the REVOKE/GRANT statements of the base that name them;
* ``<stem>.rollback.sql``: the base functions restored exactly (``CREATE OR REPLACE`` with
  the base text and its grants; ``[[replace]]`` entries with ``in = "rollback"`` edit
  that copy instead), then the manifest's ``rollback_sql``.

Manifest keys (unknown keys are an error)::

    description = "..."        # one line of Markdown: the README table's "what is wrong"
    only = "contract"          # the --only tests/test_verify_broken.py runs
    must_fail = ["contract.exact-balance"]   # asserted failed under that --only
    also_fail = ["input.availability"]       # optional: fail too in a full run (README)
    notes = "..."              # optional Markdown after must_fail in the README table
    comment = '''...'''        # optional prose for the SQL header (else the description)
    base = "migrations/0002_atomic_credit_purchase.sql"  # relative to the repository root:
                               # the migration level the example sits on; each function is
                               # as the latest migration up to it creates it
    copy_from = "migrations/0006_..."  # optional: copy the functions as this migration
                               # creates them instead (the rollback still restores base's)
    depends = "0002_..."       # optional; defaults to the base's migration id
    stem = "0100_x"            # optional; defaults to 0100_<directory name>
    functions = ["purchase_with_credits"]    # copied whole from the base
    grants = true              # copy the base's REVOKE/GRANT of those functions
    restore = true             # the rollback restores the base functions
    forward_sql = '''...'''    # literal SQL, before the function copies
    rollback_sql = '''...'''   # literal SQL, after the restored functions
    generated = true           # false: the SQL is written by hand (only the README row)
    [[replace]]                # each old must occur exactly once in the copied text
    old = '''...'''
    new = '''...'''
    in = "forward"             # or "rollback"

``python -m harness.proofs.variants --write [examples/broken]`` regenerates every example
and the README table; ``--check`` exits 1 naming each file that differs. Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.toml"
README = "README.md"
TABLE_BEGIN = "<!-- BEGIN generated table: python -m harness.proofs.variants --write -->"
TABLE_END = "<!-- END generated table -->"
COMMAND = "python -m harness.proofs.variants --write"
NOTICE = (
    f"-- Generated from manifest.toml by `{COMMAND}`: do not edit\n"
    "-- by hand (edit the manifest and regenerate)."
)
WIDTH = 90

_KEYS = {
    "description",
    "only",
    "must_fail",
    "also_fail",
    "notes",
    "comment",
    "base",
    "copy_from",
    "depends",
    "stem",
    "functions",
    "grants",
    "restore",
    "forward_sql",
    "rollback_sql",
    "generated",
    "replace",
}
_REPLACE_KEYS = {"old", "new", "in"}
_TARGETS = ("forward", "rollback")


class ManifestError(ValueError):
    """A manifest that cannot be loaded or rendered; the message names the manifest."""


@dataclass(frozen=True)
class Replacement:
    old: str
    new: str
    target: str = "forward"  # "forward": the copies in <stem>.sql; "rollback": the restore


@dataclass(frozen=True)
class Variant:
    """One example directory and what its manifest says."""

    directory: Path
    name: str  # as the README lists it: relative to examples/broken
    description: str
    only: str
    must_fail: tuple[str, ...]
    also_fail: tuple[str, ...] = ()
    notes: str = ""
    comment: str = ""
    generated: bool = True
    base: str | None = None
    copy_from: str | None = None
    depends: str | None = None
    stem: str = ""
    functions: tuple[str, ...] = ()
    grants: bool = True
    restore: bool = True
    forward_sql: str = ""
    rollback_sql: str = ""
    replace: tuple[Replacement, ...] = ()

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST

    def replacements(self, target: str) -> list[Replacement]:
        return [r for r in self.replace if r.target == target]


@dataclass(frozen=True)
class Function:
    """A CREATE FUNCTION statement as the base migration has it."""

    name: str
    comment: str  # the comment lines directly above it ("" when none)
    statement: str  # CREATE FUNCTION ... $$; exactly as written
    grants: tuple[str, ...]  # the REVOKE/GRANT statements naming it, one function each

    @property
    def text(self) -> str:
        """Comment block and statement, as CREATE OR REPLACE."""
        create = re.sub(
            r"^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION", "CREATE OR REPLACE FUNCTION", self.statement
        )
        return f"{self.comment}{create}"


# -- loading ------------------------------------------------------------------------------


def _fail(path: Path, message: str) -> ManifestError:
    return ManifestError(f"{path}: {message}")


def _strings(path: Path, data: dict, key: str, required: bool = False) -> tuple[str, ...]:
    value = data.get(key, [] if not required else None)
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and v for v in value)
        or (required and not value)
    ):
        raise _fail(path, f"{key} must be a {'non-empty ' if required else ''}list of strings")
    return tuple(value)


def _string(path: Path, data: dict, key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is not default and not (isinstance(value, str) and value.strip()):
        raise _fail(path, f"{key} must be a non-empty string")
    return str(value)


def _optional(path: Path, data: dict, key: str) -> str | None:
    return _string(path, data, key) if key in data else None


def load(directory: Path | str, examples_root: Path | str | None = None) -> Variant:
    """The variant of one example directory. ``examples_root`` (default: the directory's
    parent) is what the variant's name is relative to."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise _fail(path, "no manifest") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, f"unknown key(s): {', '.join(unknown)}")
    for key in ("description", "only"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise _fail(path, f"{key} is required (a non-empty string)")
    for key in ("grants", "restore", "generated"):
        if not isinstance(data.get(key, True), bool):
            raise _fail(path, f"{key} must be true or false")
    replace = []
    entries = data.get("replace", [])
    if not isinstance(entries, list):
        raise _fail(path, "replace must be an array of tables ([[replace]])")
    for n, entry in enumerate(entries, 1):
        if (
            not isinstance(entry, dict)
            or set(entry) - _REPLACE_KEYS
            or not isinstance(entry.get("old"), str)
            or not entry["old"]
            or not isinstance(entry.get("new"), str)
            or entry.get("in", "forward") not in _TARGETS
        ):
            raise _fail(
                path,
                f"[[replace]] #{n} needs old (non-empty), new, and optionally "
                f"in = {' or '.join(map(repr, _TARGETS))}",
            )
        replace.append(Replacement(entry["old"], entry["new"], entry.get("in", "forward")))
    root = Path(examples_root) if examples_root is not None else directory.parent
    variant = Variant(
        directory=directory,
        name=Path(os.path.relpath(directory, root)).as_posix(),
        description=" ".join(data["description"].split()),
        only=data["only"],
        must_fail=_strings(path, data, "must_fail", required=True),
        also_fail=_strings(path, data, "also_fail"),
        notes=" ".join(_string(path, data, "notes").split()),
        comment=_string(path, data, "comment").strip("\n"),
        generated=data.get("generated", True),
        base=_optional(path, data, "base"),
        copy_from=_optional(path, data, "copy_from"),
        depends=_optional(path, data, "depends"),
        stem=_string(path, data, "stem", f"0100_{directory.name}"),
        functions=_strings(path, data, "functions"),
        grants=data.get("grants", True),
        restore=data.get("restore", True),
        forward_sql=_string(path, data, "forward_sql").strip("\n"),
        rollback_sql=_string(path, data, "rollback_sql").strip("\n"),
        replace=tuple(replace),
    )
    if variant.generated:
        if variant.base is None:
            raise _fail(path, "base is required (the released migration it derives from)")
        if not variant.functions and not variant.forward_sql:
            raise _fail(path, "nothing to generate: give functions or forward_sql")
        if variant.replacements("forward") and not variant.functions:
            raise _fail(path, "[[replace]] needs functions to replace in")
        if variant.replacements("rollback") and not (variant.functions and variant.restore):
            raise _fail(
                path,
                '[[replace]] with in = "rollback" needs functions restored '
                "by the rollback (restore = true)",
            )
        if not (variant.functions and variant.restore) and not variant.rollback_sql:
            raise _fail(path, "nothing to roll back: give rollback_sql or functions to restore")
    return variant


def all_variants(examples_root: Path | str) -> list[Variant]:
    """Every example with a manifest: ``examples_root/*/`` (examples/broken/<x>/) and the
    directories beside examples_root (examples/seed_as_written/, listed as ``../name``)."""
    root = Path(examples_root)
    found = sorted(root.glob(f"*/{MANIFEST}")) + sorted(
        p for p in root.parent.glob(f"*/{MANIFEST}") if p.parent.resolve() != root.resolve()
    )
    return [load(p.parent, root) for p in found]


# -- extracting from a migration ----------------------------------------------------------


def _dollar_end(text: str, start: int) -> int:
    """The index just past the ``;`` ending the statement starting at ``start``, whose
    body is dollar-quoted (``$$`` or ``$tag$``)."""
    opening = re.compile(r"\$([A-Za-z_]\w*)?\$").search(text, start)
    if opening is None:
        raise ValueError("no dollar-quoted body")
    closing = text.find(opening.group(0), opening.end())
    if closing < 0:
        raise ValueError(f"unterminated {opening.group(0)} body")
    end = text.find(";", closing + len(opening.group(0)))
    if end < 0:
        raise ValueError("no ; after the body")
    return end + 1


def _split(name: str) -> tuple[str, int | None]:
    """``add_credits/4`` -> ("add_credits", 4): one overload of several, picked by its
    number of arguments; a bare name -> (name, None)."""
    bare, _, arity = name.partition("/")
    return bare, int(arity) if arity.isdigit() else None


def _arity(text: str, open_paren: int) -> int:
    """The number of arguments in the parenthesised list opening at ``open_paren``
    (commas inside a type's own parentheses, ``numeric(10,2)``, not counted)."""
    depth, commas, blank = 0, 0, True
    for ch in text[open_paren:]:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                break
        elif ch == "," and depth == 1:
            commas += 1
        elif not ch.isspace() and depth >= 1:
            blank = False
    return 0 if blank else commas + 1


def _definitions(text: str, name: str) -> list[re.Match[str]]:
    """The CREATE FUNCTION statements of ``name`` (``name/N``: of its overload with N
    arguments) in ``text``."""
    bare, arity = _split(name)
    found = re.finditer(
        rf"^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:public\.)?{re.escape(bare)}\s*\(",
        text,
        re.M | re.I,
    )
    return [m for m in found if arity is None or _arity(text, m.end() - 1) == arity]


def _grants(text: str, name: str) -> tuple[str, ...]:
    """The REVOKE/GRANT ... ON FUNCTION statements of ``text`` naming ``name`` (``name/N``:
    its overload with N arguments): verbatim when they name only it, else rewritten to
    name only it."""
    name, arity = _split(name)
    out = []
    for m in re.finditer(r"^(?:REVOKE|GRANT)\b[^;]*;", text, re.M):
        stmt = m.group(0)
        parts = re.match(
            r"(?s)((?:REVOKE|GRANT)\s.*?)\s+ON\s+FUNCTION\s+(.*?)\s+(FROM|TO)\s+"
            r"(.*?)\s*;$",
            stmt,
        )
        if not parts:
            continue
        signatures = re.findall(r"\w+\s*\([^)]*\)", parts.group(2))
        mine = [
            s
            for s in signatures
            if re.match(rf"{re.escape(name)}\s*\(", s)
            and (arity is None or _arity(s, s.index("(")) == arity)
        ]
        if not mine:
            continue
        if len(signatures) == 1:
            out.append(stmt)
        else:
            head, roles = " ".join(parts.group(1).split()), " ".join(parts.group(4).split())
            out.append(f"{head} ON FUNCTION {mine[0]} {parts.group(3)} {roles};")
    return tuple(out)


def extract(text: str, name: str, source: str = "the base") -> Function:
    """The CREATE FUNCTION statement of ``name`` in a migration's text, from ``CREATE`` to
    the ``;`` after its dollar-quoted body, the comment lines directly above it, and the
    REVOKE/GRANT statements naming it."""
    matches = _definitions(text, name)
    if len(matches) != 1:
        raise ValueError(
            f"{source} has {len(matches)} CREATE FUNCTION {name}(...) statements, not exactly one"
        )
    start = matches[0].start()
    try:
        end = _dollar_end(text, start)
    except ValueError as exc:
        raise ValueError(f"{source}: CREATE FUNCTION {name}: {exc}") from exc
    lines = text[:start].splitlines(keepends=True)
    comment: list[str] = []
    while lines and lines[-1].lstrip().startswith("--"):
        comment.insert(0, lines.pop())
    return Function(name, "".join(comment), text[start:end], _grants(text, name))


# -- rendering ----------------------------------------------------------------------------


def apply_replacements(text: str, replacements: list[Replacement], where: str) -> str:
    """``text`` with each replacement's ``old`` (which must occur exactly once in it, and
    not overlap another's) swapped for its ``new``."""
    spans = []
    for n, r in enumerate(replacements, 1):
        count = text.count(r.old)
        if count != 1:
            first = r.old.strip().splitlines()[0] if r.old.strip() else repr(r.old)
            raise ValueError(
                f"[[replace]] #{n} ({r.target}): its old text occurs {count} "
                f"times in {where}, not exactly once (it begins {first!r})"
            )
        at = text.index(r.old)
        spans.append((at, at + len(r.old), r))
    spans.sort(key=lambda s: s[0])
    for (_, end, _), (start, _, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ValueError(f"two [[replace]] entries overlap in {where}")
    out, pos = [], 0
    for start, end, r in spans:
        out += [text[pos:start], r.new]
        pos = end
    return "".join(out) + text[pos:]


def _comment(text: str) -> str:
    return "\n".join(f"-- {line}".rstrip() for line in text.splitlines())


def _wrap(text: str) -> str:
    return _comment("\n".join(textwrap.wrap(text, WIDTH - 3)))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _names(functions: tuple[str, ...]) -> str:
    return ", ".join(functions)


def _creates(text: str, name: str) -> bool:
    return bool(_definitions(text, name))


def _read(variant: Variant, repo_root: Path, relative: str) -> str:
    try:
        return (repo_root / relative).read_text()
    except OSError as exc:
        raise _fail(variant.manifest, f"{relative}: {exc.strerror}") from exc


def sources(variant: Variant, repo_root: Path | str, *, copy: bool = True) -> dict[str, str]:
    """Each of the variant's functions -> the migration (relative to ``repo_root``) its
    text comes from: for the copies (``copy``) the manifest's ``copy_from`` when it gives
    one; otherwise, and for the rollback's restore, the latest migration up to ``base``
    (in its directory, by name) that creates it."""
    if variant.base is None:
        raise _fail(variant.manifest, "base is required (the released migration it derives from)")
    root = Path(repo_root)
    if copy and variant.copy_from is not None:
        return {name: variant.copy_from for name in variant.functions}
    base = Path(variant.base)
    _read(variant, root, variant.base)  # a missing base is named as such
    level = sorted(
        p.name
        for p in (root / base.parent).glob("*.sql")
        if not p.name.endswith(".rollback.sql") and p.name <= base.name
    )
    texts = {m: _read(variant, root, str(base.parent / m)) for m in level}
    out = {}
    for name in variant.functions:
        found = [m for m in level if _creates(texts[m], name)]
        # None found: the base itself is named, and extract() says it has none.
        out[name] = (base.parent / found[-1]).as_posix() if found else variant.base
    return out


def base_functions(
    variant: Variant, repo_root: Path | str, *, copy: bool = True
) -> tuple[list[Function], str]:
    """The variant's functions as the migrations define them (see :func:`sources`), and
    where they come from, for the headers: one migration, or each its own."""
    root = Path(repo_root)
    found = sources(variant, root, copy=copy)
    try:
        functions = [
            extract(_read(variant, root, source), name, source) for name, source in found.items()
        ]
    except ValueError as exc:
        raise _fail(variant.manifest, str(exc)) from exc
    return functions, _origin(found, str(variant.base))


def _origin(found: dict[str, str], base: str) -> str:
    """Where the functions come from, for the headers: one migration, or each its own."""
    if len(set(found.values())) == 1:
        return next(iter(found.values()))
    return (
        "the migrations up to "
        + base
        + " ("
        + ", ".join(f"{name} from {source}" for name, source in found.items())
        + ")"
    )


def render(variant: Variant, repo_root: Path | str) -> dict[str, str]:
    """File name -> text of every SQL file the manifest generates ({} when the example is
    not generated)."""
    if not variant.generated:
        return {}
    functions, copied_from = base_functions(variant, repo_root)
    restored, restored_from = base_functions(variant, repo_root, copy=False)
    base_id = Path(str(variant.base)).name.removesuffix(".sql")
    depends = variant.depends or base_id

    def grants_of(fs: list[Function]) -> str:
        return "\n".join(g for f in fs for g in f.grants) if variant.grants else ""

    def copies(target: str) -> str:
        fs, origin = (functions, copied_from) if target == "forward" else (restored, restored_from)
        text = "\n\n".join(f.text for f in fs)
        where = f"the {target} copy of {_names(variant.functions)} from {origin}"
        try:
            return apply_replacements(text, variant.replacements(target), where)
        except ValueError as exc:
            raise _fail(variant.manifest, str(exc)) from exc

    header = [
        f"-- depends: {depends}",
        NOTICE,
        "--",
        _comment(variant.comment) if variant.comment else _wrap(variant.description),
    ]
    if functions:
        n = len(variant.replacements("forward"))
        header += [
            "--",
            _wrap(
                f"{_names(variant.functions)}: copied whole from {copied_from} "
                f"with the manifest's {_count(n, 'replacement')}; everything "
                f"else is {base_id}'s."
            ),
        ]
    forward = ["\n".join(header)]
    forward += [
        s
        for s in (variant.forward_sql, copies("forward") if functions else "", grants_of(functions))
        if s
    ]

    rollback_header = [f"-- Rollback of {variant.stem}.", NOTICE]
    rollback = []
    if functions and variant.restore:
        edits = variant.replacements("rollback")
        how = (
            f"with the manifest's {_count(len(edits), 'replacement')}: broken on purpose"
            if edits
            else "exactly"
        )
        rollback_header.append(
            _wrap(
                f"Restores {_names(variant.functions)} as {restored_from} "
                f"creates {'them' if len(functions) > 1 else 'it'}, {how}."
            )
        )
        rollback += [copies("rollback"), grants_of(restored)]
    rollback = ["\n".join(rollback_header)] + [s for s in (*rollback, variant.rollback_sql) if s]
    return {
        f"{variant.stem}.sql": "\n\n".join(forward) + "\n",
        f"{variant.stem}.rollback.sql": "\n\n".join(rollback) + "\n",
    }


def _checks(variant: Variant) -> str:
    text = ", ".join(f"`{c}`" for c in variant.must_fail)
    if variant.notes:
        text += f" ({variant.notes})"
    if variant.also_fail:
        text += "; in a full run also " + ", ".join(f"`{c}`" for c in variant.also_fail)
    return text


def readme_table(variants: list[Variant]) -> str:
    """The README's table, one row per example, ordered by the first check it must fail."""
    rows = ["| example | what is wrong | checks that must fail |", "|---|---|---|"]
    for v in sorted(variants, key=lambda v: (v.must_fail[0], v.name)):
        rows.append(f"| `{v.name}` | {v.description} | {_checks(v)} |")
    return "\n".join(rows)


def _with_table(readme: str, table: str, path: Path) -> str:
    begin, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ManifestError(f"{path}: no {TABLE_BEGIN!r} ... {TABLE_END!r} markers")
    return f"{readme[: begin + len(TABLE_BEGIN)]}\n{table}\n{readme[end:]}"


# -- writing and checking -----------------------------------------------------------------


def expected(examples_root: Path | str, repo_root: Path | str) -> dict[Path, str]:
    """Every generated file (the examples' SQL and the README) -> the text it must have."""
    root = Path(examples_root)
    variants = all_variants(root)
    out: dict[Path, str] = {}
    for v in variants:
        for name, text in render(v, repo_root).items():
            out[v.directory / name] = text
    readme = root / README
    out[readme] = _with_table(readme.read_text(), readme_table(variants), readme)
    return out


def _stale(examples_root: Path, made: dict[Path, str]) -> list[Path]:
    """SQL files in generated example directories that their manifest does not make."""
    dirs = {v.directory for v in all_variants(examples_root) if v.generated}
    return sorted(p for d in dirs for p in d.glob("*.sql") if p not in made)


def _show(path: Path, repo_root: Path) -> str:
    try:
        return path.resolve().relative_to(Path(repo_root).resolve()).as_posix()
    except ValueError:
        return str(path)


def drift(examples_root: Path | str, repo_root: Path | str) -> list[str]:
    """One line per generated file that differs from what the manifests make (empty when
    everything is as generated)."""
    made = expected(examples_root, repo_root)
    problems = []
    for path, text in made.items():
        shown = _show(path, Path(repo_root))
        if not path.exists():
            problems.append(f"{shown}: missing (run {COMMAND})")
        elif path.read_text() != text:
            what = "the generated table" if path.name == README else "it"
            problems.append(
                f"{shown}: {what} differs from what the manifests generate (run {COMMAND})"
            )
    for path in _stale(Path(examples_root), made):
        problems.append(
            f"{_show(path, Path(repo_root))}: not generated by its manifest "
            f"(remove it, or name it in the manifest's stem)"
        )
    return problems


def write(examples_root: Path | str, repo_root: Path | str) -> list[Path]:
    """Regenerate every example and the README table; remove SQL files a generated example
    no longer makes. Returns the files changed."""
    made = expected(examples_root, repo_root)
    changed = []
    for path, text in made.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    for path in _stale(Path(examples_root), made):
        path.unlink()
        changed.append(path)
    return changed


def _repo_root(examples_root: Path) -> Path:
    for candidate in (examples_root.resolve(), *examples_root.resolve().parents):
        if (candidate / "migrations").is_dir():
            return candidate
    return Path.cwd()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.proofs.variants",
        description="Generate the known-bad examples from their manifest.toml, or check "
        "that the committed SQL and README table are what they generate.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 naming every file that differs")
    parser.add_argument(
        "examples",
        nargs="?",
        default="examples/broken",
        type=Path,
        help="the examples directory (default: examples/broken)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root the manifests' base paths are relative to "
        "(default: the nearest parent holding migrations/)",
    )
    args = parser.parse_args(argv)
    root = args.root or _repo_root(args.examples)
    try:
        if args.write:
            for path in write(args.examples, root):
                print(
                    f"wrote {_show(path, root)}"
                    if path.exists()
                    else f"removed {_show(path, root)}"
                )
            return 0
        problems = drift(args.examples, root)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{len(all_variants(args.examples))} examples and the README table are as generated")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
