"""Schema fingerprints read from the catalogs, and diffs that read like review comments.

A fingerprint is a dict of sections (``tables``, ``columns``, ``functions``...), each a
dict from an object's stable name to its attributes. Two databases built the same way
have equal fingerprints; :func:`diff` names every difference in a sentence such as
``function purchase_with_credits(uuid, uuid, uuid[], numeric, numeric): EXECUTE granted
to PUBLIC after rollback``. yoyo's bookkeeping tables are left out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg

from harness import db
from harness.db.migrations import YOYO_TABLES

SECTIONS = (
    "schemas",
    "extensions",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "enums",
    "sequences",
    "functions",
    "triggers",
    "policies",
)

Fingerprint = dict[str, dict[str, dict[str, Any]]]


def fingerprint(conn: psycopg.Connection, *, bodies: bool = False) -> Fingerprint:
    """The fingerprint of the database ``conn`` is connected to."""
    params = {"skip": list(YOYO_TABLES), "bodies": bodies}
    out: Fingerprint = {}
    for section in SECTIONS:
        rows = conn.execute(db.query("fingerprint", section), params).fetchall()
        out[section] = {key: _prune(attrs) for key, attrs in rows}
    return out


def fingerprint_dsn(dsn: str, *, bodies: bool = False) -> Fingerprint:
    with db.connect(dsn) as conn:
        return fingerprint(conn, bodies=bodies)


def digest(fp: Fingerprint) -> str:
    """A short stable hash of a fingerprint (bodies, when included, do not change it)."""
    canonical = json.dumps(_without_bodies(fp), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _prune(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


def _without_bodies(fp: Fingerprint) -> Fingerprint:
    return {
        section: {k: {a: v for a, v in attrs.items() if a != "body"} for k, attrs in objs.items()}
        for section, objs in fp.items()
    }


# -- diff -----------------------------------------------------------------------------

_SINGULAR = {
    "schemas": "schema",
    "extensions": "extension",
    "tables": "table",
    "columns": "column",
    "constraints": "constraint",
    "indexes": "index",
    "enums": "enum",
    "sequences": "sequence",
    "functions": "function",
    "triggers": "trigger",
    "policies": "policy",
}

_NOUN = {
    "schemas": "schema",
    "extensions": "extension",
    "tables": "table",
    "indexes": "index",
    "enums": "type",
    "sequences": "sequence",
    "functions": "function",
}


def diff(before: Fingerprint, after: Fingerprint, when: str = "") -> list[str]:
    """Every difference from ``before`` to ``after``, one sentence each.

    ``when`` (e.g. ``"after rollback"``) ends every sentence."""
    suffix = f" {when}" if when else ""
    out: list[str] = []
    for section in SECTIONS:
        old, new = before.get(section, {}), after.get(section, {})
        for key in sorted(old.keys() | new.keys()):
            for sentence in _describe(section, key, old.get(key), new.get(key)):
                out.append(sentence + suffix)
        if section == "columns":
            out.extend(s + suffix for s in _column_order(old, new))
    return out


def _column_order(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Columns kept by both sides but in another order (a dropped and re-added column
    moves to the end, which ``SELECT *`` and ``INSERT`` without a column list notice)."""

    def order(cols: dict[str, Any], keep: set[str]) -> dict[str, list[str]]:
        tables: dict[str, list[tuple[int, str]]] = {}
        for key, attrs in cols.items():
            if key in keep:
                table, _, name = key.rpartition(".")
                tables.setdefault(table, []).append((attrs.get("position", 0), name))
        return {t: [n for _, n in sorted(v)] for t, v in tables.items()}

    both = old.keys() & new.keys()
    a, b = order(old, both), order(new, both)
    return [
        f"table {t}: column order changed from {', '.join(a[t])} to {', '.join(b[t])}"
        for t in sorted(a)
        if a[t] != b.get(t)
    ]


def _subject(section: str, key: str) -> tuple[str, str | None]:
    """(subject, detail-prefix) for an object key: columns, constraints, triggers and
    policies are named under their table."""
    if section in ("columns", "constraints", "triggers", "policies"):
        table, _, name = key.rpartition(".")
        noun = {
            "columns": "column",
            "constraints": "constraint",
            "triggers": "trigger",
            "policies": "policy",
        }[section]
        return f"table {table}", f"{noun} {name}"
    return f"{_NOUN.get(section, section)} {key}", None


def _describe(
    section: str, key: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[str]:
    subject, part = _subject(section, key)
    either = old or new or {}
    if section == "tables" and either.get("kind", "table") != "table":
        subject = f"{either['kind']} {key}"
    head = f"{subject}: {part} " if part else f"{subject}: "
    if old is None:
        return [f"{head}added"]
    if new is None:
        return [f"{head}missing"]
    out = []
    for attr in sorted(old.keys() | new.keys()):
        a, b = old.get(attr), new.get(attr)
        if a == b or attr == "body" or (section == "columns" and attr == "position"):
            continue
        out.extend(_attr_sentences(section, attr, a, b, head))
    return out


def _attr_sentences(section: str, attr: str, a: Any, b: Any, head: str) -> list[str]:
    if attr == "grants":
        return _grant_sentences(section, a or {}, b or {}, head)
    if attr == "config":
        return _config_sentences(a or [], b or [], head)
    if attr in (
        "security_definer",
        "rls",
        "rls_forced",
        "not_null",
        "strict",
        "leakproof",
        "deferrable",
        "deferred",
        "validated",
        "valid",
        "cycle",
        "permissive",
    ):
        label = {
            "security_definer": "SECURITY DEFINER",
            "rls": "row level security enabled",
            "rls_forced": "row level security forced",
            "not_null": "NOT NULL",
            "strict": "STRICT",
            "leakproof": "LEAKPROOF",
            "deferrable": "DEFERRABLE",
            "deferred": "INITIALLY DEFERRED",
            "validated": "validated",
            "valid": "valid",
            "cycle": "CYCLE",
            "permissive": "permissive",
        }[attr]
        if attr == "not_null":
            return [f"{head}now {'NOT NULL' if b else 'nullable'}"]
        if attr == "rls":
            return [f"{head}row level security {'enabled' if b else 'disabled'}"]
        if attr == "rls_forced":
            return [f"{head}row level security {'forced' if b else 'no longer forced'}"]
        return [f"{head}{'now' if b else 'no longer'} {label}"]
    if attr == "body_md5":
        return [f"{head}body changed"]
    if attr in ("definition", "view_md5"):
        if attr == "view_md5":
            return [f"{head}definition changed"]
        return [f"{head}changed from {a} to {b}"]
    if attr == "default":
        if a is None:
            return [f"{head}default {b} added"]
        if b is None:
            return [f"{head}default {a} dropped"]
    return [f"{head}{attr.replace('_', ' ')} changed from {_show(a)} to {_show(b)}"]


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _grant_sentences(section: str, a: dict[str, Any], b: dict[str, Any], head: str) -> list[str]:
    out = []
    for grantee in sorted(a.keys() | b.keys()):
        old, new = set(a.get(grantee, [])), set(b.get(grantee, []))
        gained, lost = sorted(new - old), sorted(old - new)
        if gained:
            out.append(f"{head}{', '.join(gained)} granted to {grantee}")
        if lost:
            out.append(f"{head}{', '.join(lost)} revoked from {grantee}")
    return out


def _config_sentences(a: list[str], b: list[str], head: str) -> list[str]:
    old = dict(item.split("=", 1) for item in a)
    new = dict(item.split("=", 1) for item in b)
    out = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) == new.get(name):
            continue
        if name not in new:
            out.append(
                f"{head}{name} no longer pinned"
                if name == "search_path"
                else f"{head}SET {name} dropped"
            )
        elif name not in old:
            out.append(
                f"{head}{name} now pinned to {new[name]}"
                if name == "search_path"
                else f"{head}SET {name} = {new[name]} added"
            )
        else:
            out.append(f"{head}{name} changed from {old[name]} to {new[name]}")
    return out


# -- CLI --------------------------------------------------------------------------------


def render(fp: Fingerprint) -> str:
    lines = []
    for section in SECTIONS:
        noun = _SINGULAR[section]
        for key, attrs in fp.get(section, {}).items():
            shown = ", ".join(f"{k}={_show(v)}" for k, v in sorted(attrs.items()) if k != "body")
            lines.append(f"{noun} {key}: {shown}")
    lines.append(f"fingerprint {digest(fp)}")
    return "\n".join(lines)


__all__ = ["Fingerprint", "SECTIONS", "diff", "digest", "fingerprint", "fingerprint_dsn"]
