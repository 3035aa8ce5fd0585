"""The machinery of the attacking security checks: reading routine bodies for what they
call, planting shadows of it as a hostile low role, a small marketplace to attack, the
contract calls made against it, plausible arguments for any routine, and digests of
every table to prove that nothing changed.

A *shadow* is a function, aggregate or operator created by the attacker in a schema it
may write to, with the name of something a money function calls and argument types that
the server may prefer over the real one (an exact type beats a polymorphic or an
implicitly cast one; an identical signature wins when its schema comes first in the
search path). Each shadow reports that it ran in three ways that no rollback undoes or
hides: a NOTICE (``harness-hijack: ...``), a step of a sequence, and a row in a log table
when its transaction commits. It then tries what a real attacker would (take a right only
a superuser can give, move credits to the attacker's workspace) and finally does what the
real object does, so that the money function goes on and every later shadow is seen too.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from harness import db
from harness.proofs.verify.context import q
from harness.testing import World

ATTACKER_PREFIX = "harness_attacker_"
NOTICE = "harness-hijack"
# Bookkeeping sessions resolve nothing through a schema an attacker may write to.
SAFE_OPTIONS = "-c search_path=pg_catalog,pg_temp -c statement_timeout=60s"
# At most this many shadows per overload of a called function or operator (the argument
# types that reach it by implicit casts multiply quickly).
PER_OVERLOAD = 40
API_ROLES = ("anon", "authenticated")
SERVICE_ROLE = "service_role"

_POLY_ELEMENT = {"anyelement", "anynonarray", "anyenum", "anycompatible", "anycompatiblenonarray"}
_POLY_ARRAY = {"anyarray", "anycompatiblearray"}
_ANY = '"any"'
_OPERATOR_CHARS = re.compile(r"[+\-*/<>=~!@#%^&|`?]+")
_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CALL = re.compile(rf"(?:({_NAME})\s*\.\s*)?({_NAME})\s*\(")
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def attacks_query(name: str) -> str:
    return q("attacks", name)


# -- reading bodies ----------------------------------------------------------------------


def strip_body(text: str) -> str:
    """The routine body with comments and string literals blanked out; quoted
    identifiers are kept (they may name what is called)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif c == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not text[i - 2].isalnum())
            j = i + 1
            while j < n:
                if escapes and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            out.append(" ")
        elif c == '"':
            j = i + 1
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            out.append(text[i : j + 1])
            i = j + 1
        elif c == "$" and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = _DOLLAR.match(text, i)
            if m is None:
                out.append(c)
                i += 1
                continue
            end = text.find(m.group(0), m.end())
            i = n if end < 0 else end + len(m.group(0))
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ident(token: str) -> str:
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    return token.lower()


def called_names(body: str) -> set[tuple[str | None, str]]:
    """(qualifier or None, name) of everything written as a call: ``name(`` and
    ``schema.name(``. Keywords followed by a parenthesis come along; only names the
    catalog knows as routines are ever shadowed."""
    text = strip_body(body)
    return {
        (_ident(m.group(1)) if m.group(1) else None, _ident(m.group(2)))
        for m in _CALL.finditer(text)
    }


def operator_symbols(body: str) -> set[str]:
    """Every operator symbol written in the body (the catalog decides which exist)."""
    text = strip_body(body)
    text = re.sub(r"OPERATOR\s*\([^)]*\)", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"%\s*(ROWTYPE|TYPE)\b", " ", text, flags=re.IGNORECASE)
    text = text.replace("::", " ").replace(":=", " ").replace("=>", " ")
    found = set()
    for m in _OPERATOR_CHARS.finditer(text):
        symbol = m.group(0)
        # The lexer's rule: a multi-character operator ends in + or - only when it also
        # holds one of ~ ! @ # % ^ & | ` ?; otherwise the trailing signs are prefix signs.
        while len(symbol) > 1 and symbol[-1] in "+-" and not set(symbol) & set("~!@#%^&|`?"):
            found.add(symbol[-1])
            symbol = symbol[:-1]
        found.add(symbol)
    return found


def search_path_schemas(setting: str | None, callers: Iterable[str]) -> list[str]:
    """The schemas a pinned search_path names (no pinned path: the default,
    ``"$user", public``), with ``$user`` standing for each role that calls."""
    raw = setting if setting is not None else '"$user", public'
    out: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        if name.startswith('"'):
            name = name[1:-1].replace('""', '"')
        if name == "$user":
            out.extend(callers)
        else:
            out.append(name)
    return out


# -- the catalog -------------------------------------------------------------------------


@dataclass(frozen=True)
class Routine:
    """A function, procedure or aggregate of ours."""

    oid: int
    signature: str
    schema: str
    name: str
    kind: str
    language: str
    body: str
    search_path: str | None
    is_trigger: bool
    nargs: int


def routines(conn: psycopg.Connection, attacker: str = "") -> list[Routine]:
    return [Routine(*r) for r in conn.execute(attacks_query("routines"), {"attacker": attacker})]


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    name: str
    kind: str
    array: int
    element: int
    category: str


@dataclass
class Catalog:
    """What planting needs to know about types: their names, arrays, the implicit casts,
    and the pool of types the values of ours come in."""

    types: dict[int, TypeInfo]
    casts_to: dict[int, set[int]]
    pool: set[int]

    @classmethod
    def read(cls, conn: psycopg.Connection, attacker: str) -> Catalog:
        types = {r[0]: TypeInfo(*r) for r in conn.execute(attacks_query("types"), {})}
        casts: dict[int, set[int]] = {}
        for source, target in conn.execute(attacks_query("implicit-casts"), {}):
            casts.setdefault(target, set()).add(source)
        base = {r[0] for r in conn.execute(attacks_query("type-pool"), {"attacker": attacker})}
        pool: set[int] = set()
        for oid in base:
            t = types.get(oid)
            if t is None:
                continue
            pool.add(oid)
            if t.array:
                pool.add(t.array)
            if t.element and t.category == "A":
                pool.add(t.element)
        pool = {o for o in pool if o in types and types[o].kind not in ("p",)}
        return cls(types, casts, pool)

    def name(self, oid: int) -> str:
        return self.types[oid].name

    def is_array(self, oid: int) -> bool:
        t = self.types.get(oid)
        return t is not None and t.category == "A" and bool(t.element)

    def reaching(self, target: int) -> list[int]:
        """The target type first, then the pool types an implicit cast takes to it."""
        others = sorted(o for o in self.casts_to.get(target, ()) if o in self.pool and o != target)
        return [target, *others]


# -- planting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shadow:
    """One object to plant, as the planter (``planter`` in verify_attacks.sql) reads it:
    ``kind`` f (function), p (procedure), a (aggregate), o (operator) or r (view), the
    schema to plant it in, and what it stands in for."""

    key: tuple[Any, ...]
    label: str
    spec: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {**self.spec, "kind": self.key[0], "target": self.key[1], "label": self.label}


@dataclass
class Attacker:
    """A fresh NOLOGIN role with CREATE on the schemas under attack, its own schema
    holding the logger that every shadow calls, and a workspace to steal into."""

    role: str
    schemas: list[str]
    workspace: uuid.UUID | None = None
    planted: int = 0
    failed: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.role

    def listen(self, conn: psycopg.Connection, who: str) -> None:
        """Record every shadow notice on ``conn``, with the routine that called the
        shadow (read from the notice's context) and ``who`` was calling."""

        def handler(diag: psycopg.errors.Diagnostic) -> None:
            text = diag.message_primary or ""
            if text.startswith(NOTICE):
                caller = victim(diag.context or "")
                self.notices.append(f"{caller} ran {text[len(NOTICE) + 2 :]} as {who}")

        conn.add_notice_handler(handler)


_FRAME = re.compile(r'(?:PL/pgSQL|SQL) function "?([\w$.]+)')


def victim(context: str) -> str:
    """The routine that called a shadow, from a notice's context: the frame after the
    shadow's own (the logger's frame comes first, then the shadow's SQL function)."""
    frames = [m.group(1) for m in map(_FRAME.search, context.splitlines()) if m]
    # frames[0] is the logger, frames[1] the shadow (or its operator/aggregate helper).
    return frames[2] if len(frames) > 2 else "a statement of the caller"


def new_attacker_name() -> str:
    return ATTACKER_PREFIX + secrets.token_hex(4)


def create_attacker(
    conn: psycopg.Connection, role: str, schemas: Iterable[str], thief: uuid.UUID | None
) -> Attacker:
    """Create the role, its schema and logger; give it CREATE on ``schemas`` (creating
    the ones that do not exist, owned by it, as a role with CREATE on the database
    could). ``thief``: the attacker's workspace, where its shadows move credits."""
    att = Attacker(role=role, schemas=[], workspace=thief)
    ident = sql.Identifier(role)
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
    conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident, ident))
    for schema in dict.fromkeys(schemas):
        s = sql.Identifier(schema)
        if db.scalar(conn, attacks_query("schema-exists"), {"schema": schema}):
            conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(s, ident))
        else:
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(s, ident))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(s))
        att.schemas.append(schema)
    with set_role(conn, role):
        conn.execute(attacks_query("planter"))  # no parameters: its % are format()'s
        conn.execute(attacks_query("attacker-setup"), {"attacker": role, "thief": thief})
    return att


def drop_attacker(conn: psycopg.Connection, role: str) -> None:
    ident = sql.Identifier(role)
    if not db.scalar(conn, attacks_query("role-exists"), {"role": role}):
        return
    conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
    conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def local_role(conn: psycopg.Connection, role: str | None) -> None:
    """Inside a transaction: act as ``role`` until it ends (None: as the connecting role)."""
    if role is not None:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))


@contextmanager
def set_role(conn: psycopg.Connection, role: str | None) -> Iterator[None]:
    """Act as ``role`` for the block (None: as the connecting role)."""
    if role is None:
        yield
        return
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        yield
    finally:
        conn.execute("RESET ROLE")


def _signature_variants(
    cat: Catalog, argtypes: list[int], rettype: int, variadic_any: bool
) -> list[tuple[tuple[int, ...], int]]:
    """Argument types a call may arrive with that the server would prefer to
    ``argtypes``: every pool type for a polymorphic or "any" argument (one type for all
    of them, as a call binds them), and the types that reach a concrete argument by an
    implicit cast. The result type follows the polymorphic binding."""
    names = [cat.name(t) if t in cat.types else "" for t in argtypes]
    ret_name = cat.name(rettype) if rettype in cat.types else ""
    polymorphic = any(n in _POLY_ELEMENT | _POLY_ARRAY or n == _ANY for n in names) or (
        ret_name in _POLY_ELEMENT | _POLY_ARRAY
    )
    bindings: list[int | None] = [None]
    if polymorphic:
        bindings = [t for t in sorted(cat.pool)]
    out: list[tuple[tuple[int, ...], int]] = []
    for elem in bindings:
        positions: list[list[int]] = []
        ok = True
        for t, n in zip(argtypes, names, strict=True):
            if elem is not None and (n in _POLY_ELEMENT or n == _ANY):
                if n == "anynonarray" and cat.is_array(elem):
                    ok = False
                if n == "anyenum" and cat.types[elem].kind != "e":
                    ok = False
                positions.append([elem])
            elif elem is not None and n in _POLY_ARRAY:
                array = cat.types[elem].array
                if not array or cat.is_array(elem):
                    ok = False
                positions.append([array])
            elif t in cat.types and cat.types[t].kind != "p":
                # Bound to a pool type, a shadow already has an exact match where the
                # built-in has none; its other arguments need no cast alternatives.
                positions.append([t] if elem is not None else cat.reaching(t))
            else:
                ok = False
                positions.append([])
        if variadic_any and elem is not None:
            array = cat.types[elem].array
            if not array or cat.is_array(elem):
                ok = False
            else:
                positions[-1] = [array]
        if not ok:
            continue
        if ret_name in _POLY_ELEMENT:
            ret = elem or 0
        elif ret_name in _POLY_ARRAY:
            ret = cat.types[elem].array if elem else 0
        else:
            ret = rettype
        if not ret:
            continue
        for combo in itertools.islice(itertools.product(*positions), PER_OVERLOAD):
            out.append((tuple(combo), ret))
    return out


def function_shadows(
    cat: Catalog,
    rows: list[tuple[Any, ...]],
    wanted: dict[str, set[str]],
    before_catalog: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[Shadow]:
    """Shadows of every overload (``rows`` of the ``overloads`` query) of the called
    names: ``wanted`` maps a name to the schemas to plant it in. A copy with the very
    signature of a built-in can only win where its schema comes before pg_catalog in a
    path: it is planted only in ``before_catalog``."""
    shadows: dict[tuple[Any, ...], Shadow] = {}
    for (
        _oid,
        schema,
        name,
        kind,
        argtypes,
        allargtypes,
        argmodes,
        argnames,
        ndefaults,
        variadic,
        rettype,
        retset,
        aggkind,
    ) in rows:
        if kind not in ("f", "a", "p") or (kind == "a" and aggkind != "n"):
            continue
        modes = list(argmodes or ["i"] * len(allargtypes))
        names = list(argnames or [""] * len(allargtypes))
        outs = [(names[i], allargtypes[i]) for i, m in enumerate(modes) if m in ("o", "t")]
        in_names = [names[i] for i, m in enumerate(modes) if m in ("i", "b", "v")]
        variadic_any = bool(variadic) and cat.name(variadic) == _ANY
        if any(cat.types.get(t) is None or cat.types[t].kind == "p" for _, t in outs):
            continue
        record = rettype in cat.types and cat.name(rettype) == "record"
        if record and not outs and not retset:
            continue
        for args, ret in _signature_variants(cat, list(argtypes), rettype, variadic_any):
            identical = tuple(argtypes) == args
            for target in sorted(wanted[name]):
                key = (kind, target, name, args)
                if key in shadows or (schema == target and identical):
                    continue
                if identical and schema == "pg_catalog" and target not in before_catalog:
                    continue
                label = (
                    f"{target}.{name}({', '.join(cat.name(a) for a in args)}) shadowing "
                    f"{schema}.{name}"
                )
                shadows[key] = Shadow(
                    key,
                    label,
                    {
                        "name": name,
                        "schema": schema,
                        "args": list(args),
                        "names": in_names[: len(args)],
                        "original": [
                            t if t in cat.types and cat.types[t].kind != "p" else None
                            for t in argtypes
                        ],
                        "ndefaults": ndefaults,
                        "variadic": bool(variadic),
                        "ret": ret,
                        "retset": retset,
                        "record": record and not outs,
                        "out_names": [n for n, _ in outs],
                        "out_types": [t for _, t in outs],
                    },
                )
    return list(shadows.values())


def operator_shadows(
    cat: Catalog,
    rows: list[tuple[Any, ...]],
    wanted: dict[str, set[str]],
    before_catalog: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[Shadow]:
    """Shadows of every operator (``rows`` of the ``operators`` query) of the symbols
    used, for the argument types that reach it: ``wanted`` maps a symbol to the schemas
    to plant it in (identical signatures of pg_catalog's only in ``before_catalog``)."""
    shadows: dict[tuple[Any, ...], Shadow] = {}
    for _oid, schema, symbol, left, right, result in rows:
        if not _OPERATOR_CHARS.fullmatch(symbol):
            continue
        sides = [t for t in (left, right) if t]
        for args, ret in _signature_variants(cat, sides, result, False):
            lt, rt = (args[0], args[1]) if left else (0, args[0])
            identical = (lt, rt) == (left, right)
            for target in sorted(wanted[symbol]):
                key = ("o", target, symbol, lt, rt)
                if key in shadows or (schema == target and identical):
                    continue
                if identical and schema == "pg_catalog" and target not in before_catalog:
                    continue
                label = (
                    f"operator {target}.{symbol}({cat.name(lt) if lt else 'NONE'}, "
                    f"{cat.name(rt)}) shadowing {schema}.{symbol}"
                )
                shadows[key] = Shadow(
                    key,
                    label,
                    {"name": symbol, "schema": schema, "left": lt or None, "right": rt, "ret": ret},
                )
    return list(shadows.values())


def relation_shadows(
    relations: list[tuple[str, str, str]], ahead: dict[str, set[str]]
) -> list[Shadow]:
    """Views named like our tables and views, in the writable schemas that come before
    the real one in some search path (``ahead`` maps a relation name to those schemas):
    selecting, inserting into, updating or deleting from one logs."""
    out = []
    for schema, rel, kind in relations:
        if kind == "S":
            continue
        for target in sorted(ahead.get(rel, ())):
            if target != schema:
                label = f"view {target}.{rel} shadowing {schema}.{rel}"
                out.append(Shadow(("r", target, rel), label, {"name": rel, "schema": schema}))
    return out


def plant(conn: psycopg.Connection, attacker: Attacker, shadows: list[Shadow]) -> None:
    """Create every shadow as the attacker, through the planter: one that cannot be
    created with its delegation is created without it; one that cannot be created at all
    is counted as refused."""
    with set_role(conn, attacker.role):
        failed = db.scalar(
            conn,
            attacks_query("plant"),
            {"attacker": attacker.role, "plan": Jsonb([s.as_json() for s in shadows])},
        )
    attacker.failed = int(failed)
    attacker.planted = len(shadows) - attacker.failed


# -- a marketplace to attack ----------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """A buyer with credits, leads to buy (one with a partner, one too dear), and a
    completed purchase (when the atomic function exists)."""

    workspace: uuid.UUID
    user: uuid.UUID
    leads: list[uuid.UUID]
    dear_lead: uuid.UUID
    partner: uuid.UUID
    purchase: uuid.UUID | None = None


def build_market(conn: psycopg.Connection, name: str, balance: str = "100.00") -> Market:
    """The same market, but for its ids, in every database: answers compare equal."""
    world = World(conn)
    ws, (user,) = world.workspace(balance=balance)
    partner = world.partner()
    made = world.named_leads(name, 8, "1.50", partner=partner)
    leads = [made[f"{name}-{i}"] for i in range(8)]
    dear = world.named_leads(f"{name}-dear", 1, "5000.00")[f"{name}-dear-0"]
    return Market(ws, user, leads, dear, partner)


def present(conn: psycopg.Connection, signature: str) -> bool:
    return bool(db.scalar(conn, "SELECT to_regprocedure(%s) IS NOT NULL", (signature,)))


# -- plausible arguments ---------------------------------------------------------------------


def plausible(type_name: str, param: str, market: Market, config: dict[str, Any]) -> Any:
    """A value a real caller might pass for a parameter of this type and name."""
    p = param.lower()
    if type_name == "uuid":
        if "user" in p:
            return market.user
        if "lead" in p:
            return market.leads[0]
        if "partner" in p:
            return market.partner
        if "purchase" in p and market.purchase is not None:
            return market.purchase
        return market.workspace
    if type_name == "uuid[]":
        return market.leads[:2]
    if type_name in ("numeric", "money"):
        return Decimal("3.00")
    if type_name in ("integer", "bigint", "smallint"):
        return 1
    if type_name in ("text", "character varying", "character"):
        if "kind" in p:
            return "credit_purchase"
        if "email" in p:
            return "attacker@example.com"
        return "harness-attempt"
    if type_name == "jsonb" or type_name == "json":
        if "config" in p:
            return Jsonb(config)
        return Jsonb(
            {
                "email": "attacker@example.com",
                "name": "Attacker",
                "credits_amount": "1000.00",
                "total_price": "1000.00",
                "package_name": "free",
                "new_balance": "1000.00",
            }
        )
    if type_name == "boolean":
        return True
    if type_name.startswith("timestamp"):
        return datetime.now(UTC)
    if type_name == "date":
        return datetime.now(UTC).date()
    if type_name == "interval":
        return timedelta(days=1)
    if type_name == "text[]":
        return ["harness-attempt"]
    return None


def call_statement(
    conn: psycopg.Connection,
    routine: Routine,
    how: str,
    market: Market,
    config: dict[str, Any],
    *,
    literal: bool = False,
) -> tuple[sql.Composed, list[Any]]:
    """A statement calling ``routine`` with NULL arguments (``how="nulls"``) or plausible
    ones, each cast to its declared type: as placeholders and their values, or (with
    ``literal``) written into the statement, for the attempt loop that takes text."""
    args = conn.execute(attacks_query("call-arguments"), {"oid": routine.oid}).fetchall()
    values = []
    parts = []
    for _ord, _oid, type_name, pname in args:
        value = None if how == "nulls" else plausible(type_name, pname, market, config)
        arg = sql.Literal(value) if literal else sql.Placeholder()
        if not literal:
            values.append(value)
        parts.append(sql.SQL("{}::{}").format(arg, sql.SQL(type_name)))
    name = sql.Identifier(routine.schema, routine.name)
    if routine.kind == "p":
        return sql.SQL("CALL {}({})").format(name, sql.SQL(", ").join(parts)), values
    return sql.SQL("SELECT {}({})").format(name, sql.SQL(", ").join(parts)), values


# -- digests -------------------------------------------------------------------------------


def _data_relations(conn: psycopg.Connection, attacker: str) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in conn.execute(attacks_query("data-relations"), {"attacker": attacker})]


def _per_relation(name: str, schema: str, rel: str) -> sql.Composed:
    return sql.SQL(attacks_query(name)).format(relation=sql.Identifier(schema, rel))


def _value(conn: psycopg.Connection, statement: sql.Composed) -> Any:
    row = conn.execute(statement).fetchone()
    return row[0] if row else None


def digest_statement(conn: psycopg.Connection, attacker: str = "") -> sql.Composed:
    """One statement answering (relation, md5) for every table of ours (every row) and
    every sequence (its position): cheap to ask again and again."""
    parts = []
    for schema, rel, kind in _data_relations(conn, attacker):
        name = "digest-sequence" if kind == "S" else "digest-rows"
        parts.append(
            sql.SQL("SELECT {}::text, ({})").format(
                sql.Literal(f"{schema}.{rel}"), _per_relation(name, schema, rel)
            )
        )
    return sql.SQL(" UNION ALL ").join(parts)


def digests(conn: psycopg.Connection, statement: sql.Composed | None = None) -> dict[str, str]:
    """md5 of every row of every table of ours and of every sequence's position (on a
    connection whose search_path holds pg_catalog alone)."""
    return {str(k): str(v) for k, v in conn.execute(statement or digest_statement(conn)).fetchall()}


def counts(conn: psycopg.Connection, attacker: str = "") -> dict[str, int]:
    """Rows per table of ours."""
    return {
        f"{schema}.{rel}": int(_value(conn, _per_relation("count-rows", schema, rel)))
        for schema, rel, kind in _data_relations(conn, attacker)
        if kind != "S"
    }


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME_RE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:\d\d)?)?")


def normalize(value: object) -> str:
    """An answer with its ids and times blanked and its lists in a fixed order (ids
    order them, and ids differ between databases): equal answers from two databases
    built the same way compare equal."""
    text = " ".join(str(_canonical(value)).split())
    return TIME_RE.sub("<time>", UUID_RE.sub("<id>", text))


def _canonical(value: object) -> object:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        items = [_canonical(v) for v in value]
        if isinstance(value, list):
            items.sort(key=lambda v: normalize_key(v))
        return items if isinstance(value, list) else tuple(items)
    return value


def normalize_key(value: object) -> str:
    return UUID_RE.sub("<id>", json.dumps(value, sort_keys=True, default=str))
