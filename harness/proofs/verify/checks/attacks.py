"""security.* checks that attack instead of reading the catalog: a low role plants
shadows of what the money functions call (``security.search-path-hijack``), the
migrations run under Supabase's default privileges (``security.default-privileges``),
and the API roles try every function and table operation for real
(``security.low-role-attempts``). The machinery is in :mod:`harness.proofs.verify.attacks`;
what each attacks and how is in docs/threat-model.md."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from harness import db
from harness.db.migrations import Migrator
from harness.errors import HarnessError
from harness.proofs.verify import attacks as A
from harness.proofs.verify.context import SCRATCH_PREFIX
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, CheckSkipped, check

MAX_LISTED = 12


def _listed(items: list[str], limit: int = MAX_LISTED, width: int = 240) -> str:
    shown = "; ".join(i if len(i) <= width else i[: width - 3] + "..." for i in items[:limit])
    return shown + (f"; ... ({len(items) - limit} more)" if len(items) > limit else "")


def _config() -> dict[str, Any]:
    from harness.money.service import sql_config

    return sql_config()


def _safe(ctx, dsn: str) -> psycopg.Connection:
    return db.connect(dsn, options=A.SAFE_OPTIONS)


# -- security.search-path-hijack ----------------------------------------------------------


def _targets(
    safe: psycopg.Connection, routines: list[A.Routine], callers: list[str]
) -> tuple[list[str], dict[str, set[str]], dict[str, set[str]], dict[str, set[str]], set[str]]:
    """The schemas to give the attacker, and what to shadow where: function names and
    operator symbols (each to the schemas to plant it in), relation names (to the
    schemas that come before the real one in some search path), and the writable schemas
    some path puts before pg_catalog (where an identical signature wins)."""
    paths = {r.oid: A.search_path_schemas(r.search_path, callers) for r in routines}
    writable = ["public"]
    for path in paths.values():
        writable += [s for s in path if s not in ("pg_catalog",) and not s.startswith("pg_temp")]
    writable = list(dict.fromkeys(writable))
    functions: dict[str, set[str]] = {}
    operators: dict[str, set[str]] = {}
    # Every writable schema gets a shadow of everything called, whether or not a path
    # names it today: a shadow that cannot be reached costs a statement, one that can is
    # the finding. A schema-qualified call is shadowed in its own schema (an overload).
    everywhere = set(writable)
    for r in routines:
        if r.language not in ("plpgsql", "sql"):
            continue
        for qualifier, name in A.called_names(r.body):
            where = {qualifier} & everywhere if qualifier else everywhere
            if where:
                functions.setdefault(name, set()).update(where)
        for symbol in A.operator_symbols(r.body):
            operators.setdefault(symbol, set()).update(everywhere)
    sql_bodies = [
        r.oid for r in routines if r.body and r.body.lstrip().upper().startswith("CREATE")
    ]
    if sql_bodies:
        for schema, name, is_operator in safe.execute(
            A.attacks_query("routine-dependencies"), {"oids": sql_bodies}
        ):
            into = operators if is_operator else functions
            into.setdefault(name, set()).update({s for s in writable if s != schema} | {"public"})
    before_catalog = {
        s
        for path in paths.values()
        if "pg_catalog" in path
        for s in path[: path.index("pg_catalog")]
        if s in everywhere
    }
    relations: dict[str, set[str]] = {}
    for schema, rel, _kind in safe.execute(A.attacks_query("relations"), {"attacker": ""}):
        for path in paths.values():
            if schema in path:
                for earlier in path[: path.index(schema)]:
                    if earlier in writable:
                        relations.setdefault(rel, set()).add(earlier)
    return writable, functions, operators, relations, before_catalog


def _transcript(
    conn: psycopg.Connection, market: A.Market, role: str | None, tag: str
) -> list[str]:
    """The contract calls, as ``role`` (None: the connecting role): top-ups (replayed
    with a payment reference when the function takes one), atomic purchases (completed,
    replayed, refused, without a key), the stepwise functions one by one, a refund, a
    reconciliation, a commission and an email job. Each answer, normalized."""
    cfg = Jsonb(_config())
    out: list[str] = []

    def call(label: str, name: str, params: dict[str, Any], signature: str) -> Any:
        if not A.present(conn, signature):
            out.append(f"{label}: absent")
            return None
        try:
            with conn.transaction():
                A.local_role(conn, role)
                cur = conn.execute(A.attacks_query(name), params)
                rows = cur.fetchall() if cur.description else [cur.rowcount]
        except psycopg.Error as exc:
            out.append(f"{label}: {type(exc).__name__} {A.normalize(exc.diag.message_primary)}")
            return None
        out.append(f"{label}: {A.normalize(rows)}")
        return rows

    ws, user, leads = market.workspace, market.user, market.leads
    call(
        "add_credits",
        "call-add-credits",
        {"workspace": ws, "amount": Decimal("5.00"), "package": "hijack"},
        "public.add_credits(uuid, numeric, text)",
    )
    for n in (1, 2):
        call(
            f"add_credits with a reference #{n}",
            "call-add-credits-reference",
            {
                "workspace": ws,
                "amount": Decimal("5.00"),
                "package": "hijack",
                "reference": f"ref-{tag}",
            },
            "public.add_credits(uuid, numeric, text, text)",
        )
    atomic = "public.purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, text, jsonb)"
    for label, lead_ids, price, key in (
        ("atomic purchase", leads[:2], "3.00", f"key-{tag}"),
        ("atomic replay", leads[:2], "3.00", f"key-{tag}"),
        ("atomic refusal", [market.dear_lead], "5000.00", None),
        ("atomic purchase without a key", leads[2:3], "1.50", None),
    ):
        call(
            label,
            "call-atomic",
            {
                "workspace": ws,
                "user": user,
                "leads": lead_ids,
                "price": Decimal(price),
                "key": key,
                "fingerprint": "fp" if key else None,
                "config": cfg,
            },
            atomic,
        )
    debit = "public.purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)"
    pids = []
    for lead in leads[3:6]:
        rows = call(
            "debit",
            "call-debit",
            {"workspace": ws, "user": user, "leads": [lead], "price": Decimal("1.50")},
            debit,
        )
        pids.append(rows[0][3] if rows and rows[0][0] else None)
    first, second, third = pids
    if first is not None:
        call(
            "items",
            "call-add-item",
            {"purchase": first, "lead": leads[3], "price": Decimal("1.50")},
            debit,
        )
        call(
            "mark sold",
            "call-mark-sold",
            {"leads": [leads[3]]},
            "public.mark_leads_sold_batch(uuid[])",
        )
        call("complete", "call-complete", {"purchase": first}, "public.complete_purchase(uuid)")
        call(
            "queue confirmation",
            "call-queue-confirmation",
            {"purchase": first, "config": cfg},
            "public.queue_purchase_confirmation(uuid, jsonb)",
        )
        call(
            "response leads",
            "call-response-leads",
            {"purchase": first},
            "public.purchase_response_leads(uuid)",
        )
    if second is not None:
        call("refund", "call-refund", {"purchase": second}, "public.refund_purchase(uuid)")
    if third is not None:
        call(
            "reconcile",
            "call-reconcile",
            {"purchase": third, "config": cfg},
            "public.reconcile_purchase(uuid, jsonb)",
        )
    now = datetime.now(UTC)
    call(
        "commission",
        "call-commission",
        {
            "price": Decimal("10.00"),
            "base": Decimal("0.30"),
            "bonus": Decimal("0.05"),
            "pass_rate": Decimal("0.97"),
            "created": now - timedelta(days=1),
            "sold": now,
            "config": cfg,
        },
        "public.calculate_commission(numeric, numeric, numeric, numeric, timestamptz, "
        "timestamptz, jsonb)",
    )
    call(
        "enqueue",
        "call-enqueue",
        {
            "kind": "credit_purchase",
            "payload": Jsonb(
                {
                    "email": "buyer@example.com",
                    "name": "Buyer",
                    "credits_amount": "5.00",
                    "total_price": "5.00",
                    "package_name": "hijack",
                    "new_balance": "5.00",
                }
            ),
            "workspace": ws,
        },
        "public.enqueue_email(text, jsonb, uuid, uuid)",
    )
    return out


KNOWN = {
    "add_credits",
    "purchase_leads_atomic",
    "purchase_with_credits",
    "mark_leads_sold_batch",
    "complete_purchase",
    "refund_purchase",
    "reconcile_purchase",
    "queue_purchase_confirmation",
    "purchase_response_leads",
    "calculate_commission",
    "enqueue_email",
}


def _others(
    conn: psycopg.Connection,
    safe: psycopg.Connection,
    routines: list[A.Routine],
    market: A.Market,
    role: str | None,
) -> list[str]:
    """Every other routine of ours, called with plausible arguments and rolled back (the
    catalog is read on ``safe``, whose search_path no shadow is on)."""
    out = []
    cfg = _config()
    for r in routines:
        if r.name in KNOWN or r.is_trigger or r.kind not in ("f", "p"):
            continue
        statement, values = A.call_statement(safe, r, "plausible", market, cfg)
        try:
            with conn.transaction(force_rollback=True):
                A.local_role(conn, role)
                conn.execute(statement, values)
            out.append(f"{r.signature}: ran")
        except psycopg.Error as exc:
            out.append(f"{r.signature}: {type(exc).__name__}")
    return out


def _service_flows(dsn: str, market: A.Market, present_atomic: bool) -> list[str]:
    """The service's flows as the connecting role: a purchase in each, and a top-up."""
    from harness.errors import DomainError
    from harness.money.service import PurchaseRequest, PurchaseService

    out = []
    pool = db.pool(dsn, min_size=1, max_size=2)
    try:
        flows = ("atomic", "stepwise", "legacy") if present_atomic else ("legacy",)
        for flow, lead in zip(flows, market.leads[6:8] + [market.dear_lead], strict=False):
            svc = PurchaseService(pool, flow=flow)
            try:
                res = svc.purchase(PurchaseRequest(market.workspace, market.user, (lead,)))
                out.append(f"service {flow}: {A.normalize((res.new_balance, res.total_price))}")
            except HarnessError as exc:
                code = getattr(exc, "code", type(exc).__name__)
                out.append(f"service {flow}: refused {code}")
            except Exception as exc:  # the service let a raw error out: an answer too
                out.append(f"service {flow}: {type(exc).__name__}")
        try:
            balance = PurchaseService(pool, flow="legacy").top_up(
                market.workspace, Decimal("2.00"), "hijack"
            )
            out.append(f"service top-up: {balance}")
        except (HarnessError, DomainError, psycopg.Error) as exc:
            out.append(f"service top-up: {type(exc).__name__}")
    finally:
        pool.close()
    return out


def _attack_run(ctx, dsn: str, attacked: bool) -> dict[str, Any]:
    """Build the markets, plant the shadows when ``attacked``, make every call; what was
    answered and what the attacker saw and got."""
    with _safe(ctx, dsn) as safe:
        me = str(db.scalar(safe, "SELECT current_user"))
        routines = A.routines(safe)
    if not routines:
        raise CheckSkipped("the migrations define no function")
    with ctx.connect(dsn) as conn:
        markets = {
            "service_role": A.build_market(conn, "as-service-role"),
            me: A.build_market(conn, "as-connecting-role"),
            "service": A.build_market(conn, "through-the-service"),
        }
        thief = A.World(conn).workspace(balance="0")[0]
    role = A.new_attacker_name()
    result: dict[str, Any] = {"role": role, "planted": 0}
    with _safe(ctx, dsn) as safe:
        try:
            if attacked:
                writable, functions, operators, relations, before_catalog = _targets(
                    safe, routines, [A.SERVICE_ROLE, me]
                )
                att = A.create_attacker(safe, role, writable, thief)
                cat = A.Catalog.read(safe, role)
                overloads = safe.execute(
                    A.attacks_query("overloads"), {"names": sorted(functions), "attacker": role}
                ).fetchall()
                ops = safe.execute(
                    A.attacks_query("operators"), {"names": sorted(operators), "attacker": role}
                ).fetchall()
                rels = safe.execute(A.attacks_query("relations"), {"attacker": role}).fetchall()
                shadows = (
                    A.function_shadows(cat, overloads, functions, before_catalog)
                    + A.operator_shadows(cat, ops, operators, before_catalog)
                    + A.relation_shadows(rels, relations)
                )
                A.plant(safe, att, shadows)
                result.update(
                    planted=att.planted,
                    failed=att.failed,
                    schemas=writable,
                    functions=sorted({row[2] for row in overloads}),
                    operators=sorted(operators),
                    shadows=len(shadows),
                )
            else:
                att = A.Attacker(role=role, schemas=[])
            answers: list[str] = []
            for who in (A.SERVICE_ROLE, me):
                with ctx.connect(dsn) as conn:
                    att.listen(conn, who)
                    as_role = who if who == A.SERVICE_ROLE else None
                    answers += [
                        f"as {who}: {a}"
                        for a in _transcript(conn, markets[who], as_role, who.replace("_", ""))
                    ]
                    answers += [
                        f"as {who}: {a}"
                        for a in _others(conn, safe, routines, markets[who], as_role)
                    ]
            answers += _service_flows(
                dsn,
                markets["service"],
                A.present(
                    safe,
                    "public.purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, text, jsonb)",
                ),
            )
            result["answers"] = answers
            result["counts"] = A.counts(safe, role)
            result["thief"] = db.scalar(safe, A.attacks_query("wallet"), {"workspace": thief})
            if attacked:
                result["seen"] = int(
                    db.scalar(safe, A.attacks_query("attacker-seen"), {"attacker": role})
                )
                result["log"] = [
                    f"{what} as {by}"
                    for what, by in safe.execute(
                        sql.SQL("SELECT DISTINCT what, by_role FROM {}").format(
                            sql.Identifier(role, "seen_log")
                        )
                    )
                ]
                state = safe.execute(
                    A.attacks_query("attacker-state"), {"attacker": role}
                ).fetchone()
                result["gained"] = (state[0], list(state[1])) if state else (False, [])
                result["notices"] = att.notices
        finally:
            A.drop_attacker(safe, role)
    return result


@check("security.search-path-hijack")
def search_path_hijack(ctx) -> str:
    """A fresh low role gets CREATE on every schema in any function's search_path (and
    on public) and plants a shadow of every function, aggregate and operator the money
    functions call (read from their bodies and the catalog) for every argument type that
    could win over the real one; then the contract calls run as service_role and as the
    connecting role, and the service's flows as the connecting role: no shadow may run,
    the attacker may gain nothing, and every answer and row count must equal a clean
    database's."""
    attacked = ctx.new_database(audit=False)
    clean = ctx.new_database(audit=False)
    # The attacked database and the clean one are independent: run them at once.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hijack") as pool:
        hit_run = pool.submit(_attack_run, ctx, attacked, True)
        control = pool.submit(_attack_run, ctx, clean, False).result()
        hit = hit_run.result()
    problems = []
    if hit["seen"] or hit["notices"] or hit["log"]:
        labels = list(dict.fromkeys(hit["notices"] + [f"{x} (logged)" for x in hit["log"]]))
        problems.append(f"{hit['seen']} shadow call(s) ran: {_listed(labels, 8)}")
    gained, member_of = hit["gained"]
    if gained or member_of:
        problems.append(
            "the attacker gained a right only a superuser gives"
            + (f" and membership of {member_of}" if member_of else "")
        )
    if hit["thief"] != control["thief"]:
        problems.append(
            f"the attacker's workspace holds {hit['thief']} credits, "
            f"{control['thief']} in a clean database"
        )
    differ = [
        f"{a} | clean: {b}"
        for a, b in zip(hit["answers"], control["answers"], strict=False)
        if a != b
    ]
    if len(hit["answers"]) != len(control["answers"]):
        differ.append(
            f"{len(hit['answers'])} answers, {len(control['answers'])} in a clean database"
        )
    if differ:
        problems.append("answers differ from a clean database: " + _listed(differ, 4))
    counts = [
        f"{t}: {n} rows, {control['counts'].get(t)} clean"
        for t, n in hit["counts"].items()
        if control["counts"].get(t) != n
    ]
    if counts:
        problems.append("row counts differ: " + _listed(counts, 6))
    if problems:
        raise CheckFailed("; ".join(problems))
    if hit["planted"] == 0:
        raise CheckInconclusive("no shadow could be planted")
    return (
        f"{hit['planted']} shadows planted ({hit['failed']} refused) by a fresh role with "
        f"CREATE on {', '.join(hit['schemas'])}, of the {len(hit['functions'])} routines "
        f"called ({', '.join(hit['functions'])}) and {len(hit['operators'])} "
        f"operators ({' '.join(hit['operators'])}) for every argument type that could win; "
        f"{len(hit['answers'])} calls as service_role, as the connecting role and "
        "through the service: no shadow ran, the attacker gained nothing, every answer "
        "and row count equals a clean database's"
    )


# -- security.default-privileges ------------------------------------------------------------


@contextmanager
def _supabase_database(ctx) -> Iterator[tuple[str, int]]:
    """A scratch database where Supabase's default privileges are set for the role that
    migrates (the API roles created when absent), then the migration set applied: (its
    DSN, how many migrations). Dropped afterwards unless --keep."""
    with db.scratch_database(ctx.admin_dsn, prefix=SCRATCH_PREFIX, keep=ctx.keep) as dsn:
        with ctx.connect(dsn) as conn:
            conn.execute(A.attacks_query("supabase-roles"))
            conn.execute(A.attacks_query("supabase-default-privileges"))
        try:
            with Migrator(dsn, ctx.migration_dirs) as migrator:
                migrator.apply()
                applied = len([s for s in migrator.status() if s.applied])
        except HarnessError as exc:
            raise CheckFailed(
                f"the migrations do not apply under Supabase's default privileges: {exc}"
            ) from exc
        yield dsn, applied


@check("security.default-privileges")
def default_privileges(ctx) -> str:
    """On a database where Supabase's default privileges are set before migrating (ALTER
    DEFAULT PRIVILEGES ... GRANT ALL ON TABLES, SEQUENCES, FUNCTIONS TO anon,
    authenticated, service_role), the migrations leave anon, authenticated and PUBLIC no
    privilege of any kind (TRUNCATE, REFERENCES and TRIGGER included) on any table,
    view, sequence, column or function of any schema, yoyo's bookkeeping included, and
    no CREATE on a schema. Lists every privilege found."""
    with _supabase_database(ctx) as (dsn, applied), _safe(ctx, dsn) as conn:
        rows = conn.execute(A.attacks_query("privileges"), {}).fetchall()
        objects = len(A.digests(conn))
    if rows:
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for grantee, privilege, kind, name in rows:
            grouped.setdefault((grantee, kind, name), []).append(privilege)
        found = [
            f"{grantee}: {', '.join(sorted(set(privs)))} on {kind} {name}"
            for (grantee, kind, name), privs in grouped.items()
        ]
        raise CheckFailed(
            f"{len(rows)} privileges survive {applied} migration(s) under Supabase's default "
            f"privileges: {_listed(found, len(found))}"
        )
    return (
        f"{applied} migration(s) applied under Supabase's default privileges: anon, "
        f"authenticated and PUBLIC hold no privilege on any of the {objects} tables and "
        "sequences, their views, columns and functions, nor CREATE on a schema"
    )


# -- security.low-role-attempts --------------------------------------------------------------


def _attempt(template: str, **parts: sql.Composable) -> sql.Composed:
    return sql.SQL(A.attacks_query(template)).format(**parts)


def _attempts(
    safe: psycopg.Connection, routines: list[A.Routine], market: A.Market, probe: str
) -> list[tuple[str, sql.Composed, list[Any] | None, bool]]:
    """Everything an API role could try: (what, statement, parameters, in a rolled-back
    transaction). DML runs for real (autocommit): what it changed, the digests show."""
    out: list[tuple[str, sql.Composed, list[Any] | None, bool]] = []
    cfg = _config()
    for schema in [r[0] for r in safe.execute(A.attacks_query("our-schemas"), {})]:
        out.append(
            (
                f"CREATE in schema {schema}",
                _attempt("attempt-create", schema=sql.Identifier(schema)),
                None,
                True,
            )
        )
    for schema, rel, kind in safe.execute(A.attacks_query("relations"), {"attacker": ""}):
        name = f"{schema}.{rel}"
        relation = sql.Identifier(schema, rel)
        if kind == "S":
            seq = sql.Literal(name)
            out += [
                (
                    f"SELECT from sequence {name}",
                    _attempt("attempt-sequence-select", relation=relation),
                    None,
                    False,
                ),
                (f"nextval({name})", _attempt("attempt-nextval", sequence=seq), None, False),
                (f"setval({name})", _attempt("attempt-setval", sequence=seq), None, False),
            ]
            continue
        columns = safe.execute(A.attacks_query("columns"), {"relation": name}).fetchall()
        out += [
            (f"SELECT from {name}", _attempt("attempt-select", relation=relation), None, False),
            (f"INSERT into {name}", _attempt("attempt-insert", relation=relation), None, False),
            (f"DELETE from {name}", _attempt("attempt-delete", relation=relation), None, False),
        ]
        if kind in ("r", "p"):
            out.append(
                (f"TRUNCATE {name}", _attempt("attempt-truncate", relation=relation), None, False)
            )
            out.append(
                (f"TRIGGER on {name}", _attempt("attempt-trigger", relation=relation), None, True)
            )
            for column, type_name in safe.execute(
                A.attacks_query("key-columns"), {"relation": name}
            ):
                out.append(
                    (
                        f"REFERENCES {name}({column})",
                        _attempt(
                            "attempt-references",
                            probe=sql.Identifier(probe),
                            relation=relation,
                            column=sql.Identifier(column),
                            type=sql.SQL(type_name),
                        ),
                        None,
                        True,
                    )
                )
        for column, _type, updatable in columns:
            col = sql.Identifier(column)
            out.append(
                (
                    f"SELECT {name}.{column}",
                    _attempt("attempt-select-column", relation=relation, column=col),
                    None,
                    False,
                )
            )
            if updatable:
                out += [
                    (
                        f"UPDATE {name}.{column}",
                        _attempt("attempt-update", relation=relation, column=col),
                        None,
                        False,
                    ),
                    (
                        f"INSERT {name}.{column}",
                        _attempt("attempt-insert-column", relation=relation, column=col),
                        None,
                        False,
                    ),
                ]
    for r in routines:
        if r.is_trigger or r.kind not in ("f", "p", "a"):
            continue
        for how in ("nulls", "plausible"):
            statement, values = A.call_statement(safe, r, how, market, cfg, literal=True)
            label = "NULL" if how == "nulls" else "plausible"
            out.append((f"{r.signature} with {label} arguments", statement, values, False))
    return out


def _refused(state: str | None, message: str | None, what: str) -> bool:
    """Refused by the privilege check itself: 'permission denied for' the object tried
    (a function's own tables denying it means the function ran; a row level security
    refusal, also 42501, means the privilege was there)."""
    text = message or ""
    if state != "42501":
        return False
    if what.endswith(" arguments"):  # a routine: only its own EXECUTE counts
        return text.startswith(
            (
                "permission denied for function",
                "permission denied for procedure",
                "permission denied for aggregate",
                "permission denied for schema",
            )
        )
    return text.startswith("permission denied")


@check("security.low-role-attempts")
def low_role_attempts(ctx) -> str:
    """On a database migrated under Supabase's default privileges (as
    security.default-privileges), as anon and as authenticated (SET ROLE), really try
    every function, procedure and aggregate of ours (with NULL arguments and with
    plausible ones: real workspace, user, lead and purchase ids, amounts, the service's
    configuration), every table operation (SELECT, INSERT, UPDATE, DELETE, TRUNCATE, per
    column too, REFERENCES and TRIGGER) on every table and view, yoyo's included,
    nextval and setval on every sequence, and CREATE in every schema: each must be
    refused by the privilege check, and every table and sequence must be unchanged."""
    with _supabase_database(ctx) as (dsn, _applied):
        return _low_role_attempts(ctx, dsn)


def _low_role_attempts(ctx, dsn: str) -> str:
    with ctx.connect(dsn) as conn:
        market = A.build_market(conn, "low-role")
        if A.present(
            conn, "public.purchase_leads_atomic(uuid, uuid, uuid[], numeric, text, text, jsonb)"
        ):
            answer = conn.execute(
                A.attacks_query("call-atomic"),
                {
                    "workspace": market.workspace,
                    "user": market.user,
                    "leads": market.leads[:1],
                    "price": Decimal("1.50"),
                    "key": "low-role",
                    "fingerprint": "fp",
                    "config": Jsonb(_config()),
                },
            ).fetchone()
            data = json.loads(answer[0]) if answer else {}
            pid = (data.get("response") or {}).get("purchase_id")
            if pid:
                market = replace(market, purchase=uuid.UUID(pid))
    with _safe(ctx, dsn) as safe:
        routines = A.routines(safe)
        roles = [r[0] for r in safe.execute(A.attacks_query("api-roles"), {})]
        if not roles:
            raise CheckSkipped("neither anon nor authenticated exists")
        probe = A.new_attacker_name().replace("attacker", "probe")
        attempts = _attempts(safe, routines, market, probe)
        before = A.digests(safe)
        safe.execute(_attempt("probe-schema", probe=sql.Identifier(probe)))
        for role in roles:
            safe.execute(
                _attempt(
                    "probe-schema-grant", probe=sql.Identifier(probe), role=sql.Identifier(role)
                )
            )
    problems: list[str] = []
    tried = 0
    for role in roles:
        with ctx.connect(dsn, options="-c statement_timeout=120s -c lock_timeout=2s") as conn:
            conn.execute(A.attacks_query("attempt-all"))
            can_trigger = True
            try:
                with conn.transaction():
                    A.local_role(conn, role)
                    conn.execute(A.attacks_query("attempt-trigger-function"))
            except psycopg.Error:
                can_trigger = False  # no temporary function: no TRIGGER attempt to make
            chosen = [a for a in attempts if can_trigger or not a[0].startswith("TRIGGER")]
            with conn.transaction():
                A.local_role(conn, role)
                outcomes = conn.execute(
                    A.attacks_query("attempt-run"),
                    {
                        "statements": [a[1].as_string(conn) for a in chosen],
                        "rollback": [a[3] for a in chosen],
                    },
                ).fetchall()
            tried += len(outcomes)
            for (what, _statement, _values, _rollback), (_n, ok, state, message) in zip(
                chosen, outcomes, strict=True
            ):
                if ok:
                    problems.append(f"{role}: {what} succeeded")
                elif not _refused(state, message, what):
                    reason = " ".join(str(message).split())[:80]
                    problems.append(
                        f"{role}: {what} got past the privilege check ({state}: {reason})"
                    )
    with _safe(ctx, dsn) as safe:
        safe.execute(_attempt("probe-schema-drop", probe=sql.Identifier(probe)))
        after = A.digests(safe)
    moved = A.changed(before, after)
    if moved:
        problems.append("changed by the attempts: " + ", ".join(moved))
    if problems:
        raise CheckFailed(f"{len(problems)} of {tried} attempts: " + _listed(problems, 20))
    return (
        f"{tried} attempts as {' and '.join(roles)} ({len(routines)} routines with NULL and "
        f"plausible arguments, every table, column, sequence and schema): every one refused "
        f"by the privilege check; {len(before)} tables and sequences unchanged"
    )
