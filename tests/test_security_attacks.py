"""The security findings, each reproduced as the attack that found it: a low role that may
create in public shadows what the money functions call; Supabase's default privileges
hand the API roles the tables; a Message-ID that repeats across databases; keys and
inputs that made the service leak raw errors or charge then fail; a configuration, a
purchase without items and a retried top-up that the SQL functions trusted."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
from conftest import snapshot
from psycopg import sql
from psycopg.types.json import Jsonb

from harness import db as database
from harness.db.migrations import Migrator
from harness.errors import DomainError, HarnessError
from harness.money.service import PurchaseRequest, PurchaseService, sql_config
from harness.outbox.queue import CreditPurchaseEmail, queue_credit_purchase_email
from harness.testing import release_together

FLOWS = ("atomic", "stepwise", "legacy")


@pytest.fixture
def pool(db):
    p = database.pool(db, max_size=6)
    yield p
    p.close()


@pytest.fixture
def attacker(conn):
    """A fresh low role that may create in public (the default before PostgreSQL 15)."""
    role = f"attacker_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    yield role
    conn.execute("RESET ROLE")
    conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# -- 1. search_path hijack ------------------------------------------------------------------

SHADOWS = [
    # (what the money functions call, a better-typed shadow that records it ran)
    "CREATE FUNCTION public.cardinality(uuid[]) RETURNS integer LANGUAGE sql AS "
    "$$ INSERT INTO public.hijacked VALUES ('cardinality'); SELECT 1 $$",
    "CREATE FUNCTION public.array_position(uuid[], uuid) RETURNS integer LANGUAGE sql AS "
    "$$ INSERT INTO public.hijacked VALUES ('array_position'); SELECT NULL::integer $$",
    "CREATE FUNCTION public.unnest(uuid[]) RETURNS SETOF uuid LANGUAGE sql AS "
    "$$ INSERT INTO public.hijacked VALUES ('unnest'); SELECT pg_catalog.unnest($1) $$",
    "CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint LANGUAGE sql AS "
    "$$ INSERT INTO public.hijacked VALUES ('hashtextextended'); SELECT 1::bigint $$",
]


def plant(conn, role):
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    conn.execute("CREATE TABLE public.hijacked (what text)")
    conn.execute("GRANT INSERT ON public.hijacked TO PUBLIC")
    for statement in SHADOWS:
        conn.execute(statement)
    conn.execute("RESET ROLE")


@pytest.mark.parametrize("as_role", ["service_role", None])
def test_functions_planted_in_public_never_run_inside_the_money_functions(
    conn, world, attacker, as_role
):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(2, "1.50")
    plant(conn, attacker)
    if as_role:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(as_role)))
    answer = conn.execute(
        "SELECT public.purchase_leads_atomic(%s, %s, %s::uuid[], %s, %s, %s, %s)",
        (ws, user, leads, Decimal("3.00"), "k1", "fp", Jsonb(sql_config())),
    ).fetchone()[0]
    conn.execute("RESET ROLE")
    ran = [r[0] for r in conn.execute("SELECT what FROM public.hijacked")]
    assert ran == [], f"the shadows ran: {ran}"
    assert answer["status"] == "completed"
    assert world.balance(ws) == Decimal("7.00")


def test_the_migrations_leave_public_closed_to_creation(conn):
    assert not conn.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()[
        0
    ]


# -- 2. Supabase's default privileges ------------------------------------------------------


def test_migrating_under_supabase_default_privileges_leaves_the_api_roles_nothing(empty_db):
    with database.connect(empty_db) as conn:
        _create_api_roles(conn)
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON {} "
                    "TO anon, authenticated, service_role"
                ).format(sql.SQL(kind))
            )
    with Migrator(empty_db) as m:
        m.apply()
    with database.connect(empty_db) as conn:
        leaks = conn.execute(
            """
            SELECT r.rolname, c.relname, p
            FROM pg_class c
            CROSS JOIN (SELECT oid, rolname FROM pg_roles
                        WHERE rolname IN ('anon', 'authenticated')) r
            CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                    'REFERENCES', 'TRIGGER']) p
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')
              AND has_table_privilege(r.oid, c.oid, p)
            UNION ALL
            SELECT r.rolname, p.oid::regprocedure::text, 'EXECUTE'
            FROM pg_proc p
            CROSS JOIN (SELECT oid, rolname FROM pg_roles
                        WHERE rolname IN ('anon', 'authenticated')) r
            WHERE p.pronamespace = 'public'::regnamespace
              AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
            """
        ).fetchall()
    assert leaks == [], f"{len(leaks)} privileges, e.g. {leaks[:5]}"


def _create_api_roles(conn):
    for role in ("anon", "authenticated", "service_role"):
        exists = conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (role,))
        if not exists.fetchone()[0]:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))


# -- 4. Message-ID reuse --------------------------------------------------------------------


def _first_job_message_id(dsn):
    from harness.outbox.mailer import message_id_for

    with database.connect(dsn) as conn:
        job_id = queue_credit_purchase_email(
            conn,
            CreditPurchaseEmail(
                email="buyer@example.com",
                name="Buyer",
                credits_amount=Decimal("1.00"),
                total_price=Decimal("1.00"),
                package_name="starter",
                new_balance=Decimal("1.00"),
            ),
        )
        cur = conn.execute("SELECT * FROM email_jobs WHERE id = %s", (job_id,))
        names = [c.name for c in cur.description]
        row = dict(zip(names, cur.fetchone(), strict=True))
    return job_id, message_id_for(row), message_id_for(row)


def test_message_ids_differ_across_databases_and_repeat_for_one_job(clone_db, template_db):
    first, second = clone_db(template_db), clone_db(template_db)
    id1, m1, again = _first_job_message_id(first)
    id2, m2, _ = _first_job_message_id(second)
    assert id1 == id2  # the same job number in two databases: the old scheme's collision
    assert m1 != m2, f"two different confirmations share the Message-ID {m1}"
    assert m1 == again and m1.startswith("<") and m1.endswith("@harness>")


# -- 5. charge, then fail; raw errors out of the service ---------------------------------------

BAD_KEYS = ["", "   ", "k" * 256, "k" * 10_000, "a\x00b", "a\nb", "tab\there", 42, "\ud800"]


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:20])
def test_a_bad_idempotency_key_is_refused_with_a_stable_code_before_anything_is_written(
    conn, world, pool, flow, key
):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, flow).purchase(PurchaseRequest(ws, user, tuple(leads), key))
    assert info.value.code == "invalid_idempotency_key"
    assert snapshot(conn) == before


@pytest.mark.parametrize("flow", FLOWS)
def test_the_longest_printable_key_is_accepted(conn, world, pool, flow):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    key = "é" * 255
    result = PurchaseService(pool, flow).purchase(PurchaseRequest(ws, user, tuple(leads), key))
    replay = PurchaseService(pool, flow).purchase(PurchaseRequest(ws, user, tuple(leads), key))
    assert replay.replayed and replay.purchase_id == result.purchase_id


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    "request_fields",
    [
        {"workspace_id": "not-a-uuid"},
        {"user_id": 12},
        {"lead_ids": ("not-a-uuid",)},
        {"user_id": uuid.uuid4()},  # unknown user
        {"workspace_id": uuid.uuid4()},  # unknown workspace
    ],
    ids=["workspace", "user", "lead", "unknown-user", "unknown-workspace"],
)
def test_malformed_or_unknown_ids_are_refused_before_the_debit(
    conn, world, pool, flow, request_fields
):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    fields = {"workspace_id": ws, "user_id": user, "lead_ids": tuple(leads), **request_fields}
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, flow).purchase(PurchaseRequest(**fields, idempotency_key="k"))
    assert info.value.code in ("invalid_request", "not_authorized")
    assert snapshot(conn) == before


def test_no_database_error_leaves_the_service_raw(conn, world, pool):
    ws, _ = world.workspace(balance=None)
    conn.execute("ALTER TABLE email_jobs ADD CONSTRAINT no_jobs CHECK (false) NOT VALID")
    try:
        with pytest.raises(HarnessError) as info:
            PurchaseService(pool, "atomic").top_up(ws, Decimal("5.00"), "p")
    finally:
        conn.execute("ALTER TABLE email_jobs DROP CONSTRAINT no_jobs")
    assert not isinstance(info.value, psycopg.Error)
    assert info.value.code == "database_error"
    assert isinstance(info.value.__cause__, psycopg.errors.CheckViolation)
    assert world.balance(ws) is None


def test_a_lost_database_is_database_unavailable(db, world):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    pool = database.pool(db, min_size=1, max_size=1)
    try:
        with pool.connection() as c:
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        with database.connect(db) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(HarnessError) as info:
            PurchaseService(pool, "atomic").purchase(PurchaseRequest(ws, user, tuple(leads)))
    finally:
        pool.close()
    assert info.value.code in ("database_unavailable", "database_error")
    assert not isinstance(info.value, psycopg.Error)


# -- 7. trusted inputs inside SQL -----------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        {"commission_freshness_bonus_rate": "NaN"},
        {"commission_freshness_bonus_rate": "Infinity"},
        {"commission_freshness_bonus_rate": "1.5"},
        {"commission_bonus_pass_rate": "-0.1"},
        {"commission_freshness_days": "7.5"},
        {"commission_freshness_days": -1},
        {"download_url_prefix": ""},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_a_bad_configuration_is_refused_by_the_sql_functions(conn, world, override):
    ws, (user,) = world.workspace(balance="10.00")
    partner = world.partner()
    leads = world.leads(1, "10.00", partner=partner)
    before = snapshot(conn)
    config = {**sql_config(), **override}
    if not set(override) <= {"download_url_prefix"}:  # the commission reads the rates
        with pytest.raises(psycopg.Error, match="Invalid configuration"):
            conn.execute(
                "SELECT public.calculate_commission(10.00, 0.30, 0.05, 0.97, now(), now(), %s)",
                (Jsonb(config),),
            )
    answer = None
    try:
        answer = conn.execute(
            "SELECT public.purchase_leads_atomic(%s, %s, %s::uuid[], %s, NULL, NULL, %s)",
            (ws, user, leads, Decimal("10.00"), Jsonb(config)),
        ).fetchone()[0]
    except psycopg.Error:
        pass
    assert answer is None or answer["status"] != "completed"
    assert snapshot(conn) == before


def test_complete_purchase_refuses_a_purchase_without_its_items(conn, world):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(2, "1.00")
    ok, _, _, pid = conn.execute(
        "SELECT * FROM purchase_with_credits(%s, %s, %s::uuid[], 2.00, 2.00)", (ws, user, leads)
    ).fetchone()
    assert ok
    try:
        status = conn.execute("SELECT complete_purchase(%s)::text", (pid,)).fetchone()[0]
    except psycopg.Error:
        status = "refused"
    assert status != "completed"
    assert (
        conn.execute(
            "SELECT status::text FROM marketplace_purchases WHERE id = %s", (pid,)
        ).fetchone()[0]
        == "pending"
    )


def test_a_top_up_retried_with_its_payment_reference_credits_once(conn, world, pool):
    ws, _ = world.workspace(balance=None)
    service = PurchaseService(pool, "atomic")
    assert service.top_up(ws, Decimal("25.00"), "starter", payment_reference="pi_1") == 25
    assert service.top_up(ws, Decimal("25.00"), "starter", payment_reference="pi_1") == 25
    assert service.top_up(ws, Decimal("5.00"), "mini", payment_reference="pi_2") == 30
    assert service.top_up(ws, Decimal("5.00"), "mini") == 35  # no reference: every call
    jobs = conn.execute(
        "SELECT count(*) FROM email_jobs WHERE workspace_id = %s", (ws,)
    ).fetchone()[0]
    assert jobs == 3  # the replay sent no second email
    assert world.balance(ws) == Decimal("35.00")


def test_concurrent_retries_of_one_payment_credit_once(conn, world, pool):
    ws, _ = world.workspace(balance=None)
    service = PurchaseService(pool, "atomic")
    outcomes, _ = release_together(
        6, lambda i: service.top_up(ws, Decimal("10.00"), "p", payment_reference="pi_race")
    )
    assert outcomes == [Decimal("10.00")] * 6, outcomes
    assert world.balance(ws) == Decimal("10.00")
    assert (
        conn.execute("SELECT count(*) FROM email_jobs WHERE workspace_id = %s", (ws,)).fetchone()[0]
        == 1
    )


def test_add_credits_keeps_its_three_argument_call_and_replays_by_reference(conn, world):
    ws, _ = world.workspace(balance=None)
    assert conn.execute("SELECT add_credits(%s, 5.00, 'p')", (ws,)).fetchone()[0] == 5
    for _ in range(2):
        balance = conn.execute("SELECT add_credits(%s, 5.00, 'p', 'ref-1')", (ws,)).fetchone()[0]
        assert balance == Decimal("10.00")
    entries = conn.execute(
        "SELECT count(*) FROM credit_ledger WHERE workspace_id = %s", (ws,)
    ).fetchone()[0]
    assert entries == 2  # the replay wrote no ledger entry


def test_a_bad_payment_reference_or_package_is_refused_before_anything_is_written(
    conn, world, pool
):
    ws, _ = world.workspace(balance="1.00")
    before = snapshot(conn)
    service = PurchaseService(pool, "atomic")
    for kwargs in ({"payment_reference": "x" * 256}, {"payment_reference": "a\x00"}, {}):
        package = "" if not kwargs else "p"
        with pytest.raises(DomainError) as info:
            service.top_up(ws, Decimal("1.00"), package, **kwargs)
        assert info.value.code == "invalid_request"
    with pytest.raises(DomainError) as info:
        service.top_up(uuid.uuid4(), Decimal("1.00"), "p")
    assert info.value.code == "unknown_workspace"
    assert snapshot(conn) == before
