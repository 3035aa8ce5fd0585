"""harness serve: the purchase route over HTTP, against a real server and a real database.
Each test serves its own migrated clone with uvicorn on loopback and talks to it with
httpx; nothing is mocked."""

from __future__ import annotations

import json
import os
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import pytest

from harness import db as database
from harness.cli import cli
from harness.drivers.serve import contract, tokens
from harness.drivers.serve.app import AppConfig
from harness.drivers.serve.limits import Limits
from harness.drivers.serve.server import ServeProcess, running
from harness.errors import DOMAIN_ERRORS, SERVICE_ERRORS
from harness.testing import World, max_overlap, release_together, snapshot

SECRET = "s" * 40
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def serve(db):
    """The application on this test's database: {"url", "dsn"}; limits off unless asked."""

    def start(limits=None, flow=None):
        limits = limits or Limits(0, 0)
        return running(AppConfig(dsn=db, secret=SECRET, limits=limits, flow=flow))

    return start


def auth(ws, user, key=None):
    return contract.headers(tokens.issue(SECRET, ws, user), key)


def buy(url, ws, user, leads, key=None):
    return httpx.post(
        url + contract.PURCHASE,
        json=contract.purchase_body(leads),
        headers=auth(ws, user, key),
        timeout=30,
    )


def test_a_purchase_answers_the_source_designs_shape_and_a_replay_buys_nothing(serve, world, conn):
    ws, (user,) = world.workspace(balance="5.00")
    leads = world.leads(2, "1.50")
    with serve() as url:
        first = buy(url, ws, user, leads, key="k-1")
        again = buy(url, ws, user, list(reversed(leads)), key="k-1")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["success"] is True and body["replayed"] is False
    assert body["totalPrice"] == "3.00" and body["creditsRemaining"] == "2.00"
    assert body["purchase"]["status"] == "completed"
    assert body["purchase"]["download_url"].endswith(body["purchase"]["id"])
    assert sorted(lead["lead_id"] for lead in body["leads"]) == sorted(map(str, leads))
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["purchase"]["id"] == body["purchase"]["id"]
    assert World(conn).balance(ws) == Decimal("2.00")


def test_refusals_map_to_their_status_and_code_and_change_nothing(serve, world, conn):
    ws, (user,) = world.workspace(balance="1.00")
    other, (stranger,) = world.workspace(balance="10.00")
    leads = world.leads(3, "1.00")
    before = snapshot(conn)
    with serve() as url:
        poor = buy(url, ws, user, leads[:2])
        outsider = buy(url, ws, stranger, leads[:1])
        unknown = buy(url, ws, user, [uuid.uuid4()])
        empty = buy(url, ws, user, [])
        twice = buy(url, ws, user, [leads[0], leads[0]])
        bad_body = httpx.post(
            url + contract.PURCHASE,
            json={"lead_ids": ["x"], "payment_method": "card"},
            headers=auth(ws, user),
        )
    assert (poor.status_code, poor.json()["code"]) == (402, "insufficient_credits")
    assert poor.json()["required"] == "2.00" and poor.json()["balance"] == "1.00"
    assert (outsider.status_code, outsider.json()["code"]) == (403, "not_authorized")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "leads_not_found")
    assert (empty.status_code, empty.json()["code"]) == (422, "no_leads_selected")
    assert (twice.status_code, twice.json()["code"]) == (422, "duplicate_leads")
    assert (bad_body.status_code, bad_body.json()["code"]) == (422, "invalid_request")
    assert any("payment_method" in d for d in bad_body.json()["detail"])
    assert snapshot(conn) == before


def test_an_idempotency_key_reused_for_another_request_is_a_conflict(serve, world):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(2, "1.00")
    with serve() as url:
        assert buy(url, ws, user, leads[:1], key="k").status_code == 200
        other = buy(url, ws, user, leads[1:], key="k")
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_mismatch")


@pytest.mark.parametrize(
    "make",
    [
        lambda ws, u: None,
        lambda ws, u: tokens.issue("t" * 40, ws, u),  # another secret
        lambda ws, u: tokens.issue(SECRET, ws, u, ttl_s=-10),  # expired
        lambda ws, u: jwt.encode({"sub": str(u), "workspace_id": str(ws)}, None, "none"),
        lambda ws, u: "not-a-jwt",
    ],
    ids=["missing", "wrong-secret", "expired", "alg-none", "garbage"],
)
def test_a_request_without_a_valid_token_is_401_and_buys_nothing(serve, world, conn, make):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    token = make(ws, user)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    before = snapshot(conn)
    with serve() as url:
        r = httpx.post(url + contract.PURCHASE, json=contract.purchase_body(leads), headers=headers)
    assert (r.status_code, r.json()["code"]) == (401, "not_authenticated")
    assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(conn) == before


def test_purchases_and_downloads_belong_to_the_buyers_workspace_only(serve, world):
    ws, (user,) = world.workspace(balance="10.00")
    other, (stranger,) = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    with serve() as url:
        pid = buy(url, ws, user, leads).json()["purchase"]["id"]
        mine = httpx.get(url + contract.PURCHASES.format(purchase_id=pid), headers=auth(ws, user))
        theirs = httpx.get(
            url + contract.PURCHASES.format(purchase_id=pid), headers=auth(other, stranger)
        )
        stolen = httpx.get(
            url + contract.DOWNLOAD.format(purchase_id=pid), headers=auth(other, stranger)
        )
    assert mine.status_code == 200 and len(mine.json()["leads"]) == 1
    assert (theirs.status_code, theirs.json()["code"]) == (404, "purchase_not_found")
    assert (stolen.status_code, stolen.json()["code"]) == (404, "purchase_not_found")
    assert str(leads[0]) not in stolen.text


def test_a_download_is_csv_with_formula_cells_neutralised(serve, world, conn):
    ws, (user,) = world.workspace(balance="10.00")
    evil = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tTAB", "\rCR"]
    leads = world.leads(len(evil), "1.00")
    for lead, company in zip(leads, evil, strict=True):
        conn.execute("UPDATE leads SET company = %s WHERE id = %s", (company, lead))
    with serve() as url:
        pid = buy(url, ws, user, leads).json()["purchase"]["id"]
        r = httpx.get(url + contract.DOWNLOAD.format(purchase_id=pid), headers=auth(ws, user))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["company"] for row in rows) == sorted("'" + e for e in evil)
    assert contract.safe_cell("plain") == "plain" and contract.safe_cell(None) == ""


def test_a_refunded_pending_or_expired_purchase_is_never_downloaded(serve, world, conn):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(3, "1.00")
    with serve() as url:
        ids = [buy(url, ws, user, [lead]).json()["purchase"]["id"] for lead in leads]
        refunded, pending, expired = ids
        # States reached by the repair path and by time, set the way they would be.
        conn.execute(
            "UPDATE marketplace_purchases SET status = 'refunded', completed_at = NULL, "
            "refunded_at = now() WHERE id = %s",
            (refunded,),
        )
        conn.execute(
            "UPDATE marketplace_purchases SET status = 'pending', completed_at = NULL "
            "WHERE id = %s",
            (pending,),
        )
        conn.execute(
            "UPDATE marketplace_purchases SET created_at = now() - interval '100 days', "
            "completed_at = now() - interval '91 days' WHERE id = %s",
            (expired,),
        )
        answers = {
            pid: httpx.get(url + contract.DOWNLOAD.format(purchase_id=pid), headers=auth(ws, user))
            for pid in ids
        }
    assert (answers[refunded].status_code, answers[refunded].json()["code"]) == (
        410,
        "purchase_refunded",
    )
    assert str(leads[0]) not in answers[refunded].text
    assert (answers[pending].status_code, answers[pending].json()["code"]) == (
        409,
        "purchase_not_completed",
    )
    assert (answers[expired].status_code, answers[expired].json()["code"]) == (
        410,
        "download_expired",
    )


def fresh_window(needed: float = 20.0) -> None:
    """Wait, if need be, for a new rate-limit window: the limits count per fixed window
    (epoch-aligned, as the database computes it), and a test whose requests straddled two
    would see its count start again halfway."""
    into = time.time() % contract.WINDOW_S
    if into > contract.WINDOW_S - needed:
        time.sleep(contract.WINDOW_S - into + 0.2)


def test_the_rate_limit_refuses_with_retry_after_and_never_counts_a_replay_twice(serve, world):
    fresh_window()
    ws, (user,) = world.workspace(balance="100.00")
    leads = world.leads(4, "1.00")
    with serve(limits=Limits(purchase=3, credits=1)) as url:
        first = buy(url, ws, user, leads[:1], key="a")
        replays = [buy(url, ws, user, leads[:1], key="a") for _ in range(5)]
        more = [buy(url, ws, user, [lead]) for lead in leads[1:3]]
        refused = buy(url, ws, user, leads[3:])
        topups = [
            httpx.post(
                url + contract.TOPUP,
                json={"amount": "1.00", "package": "p", "payment_reference": ref},
                headers=auth(ws, user),
            )
            for ref in ("r1", "r2")
        ]
    assert first.status_code == 200
    assert [r.status_code for r in replays] == [200] * 5
    assert all(r.json()["replayed"] for r in replays)
    assert [r.status_code for r in more] == [200, 200]
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= contract.WINDOW_S
    assert [t.status_code for t in topups] == [200, 429]


def test_the_rate_limit_holds_across_two_server_processes_on_one_database(db, world):
    fresh_window()
    ws, (user,) = world.workspace(balance="100.00")
    leads = world.leads(6, "1.00")
    config = AppConfig(dsn=db, secret=SECRET, limits=Limits(purchase=4, credits=4))
    with running(config) as a, running(config) as b:
        codes = [
            buy(url, ws, user, [lead]).status_code
            for url, lead in zip([a, b] * 3, leads, strict=True)
        ]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_concurrent_purchases_over_http_overlap_and_spend_exactly_the_balance(serve, world, conn):
    n = 16
    ws, users = world.workspace(balance="10.00", members=n)
    leads = world.leads(n, "1.00")
    with serve() as url:

        def one(i):
            return buy(url, ws, users[i], [leads[i]])

        outcomes, spans = release_together(n, one)
    statuses = sorted(o.status_code for o in outcomes)
    assert statuses == [200] * 10 + [402] * 6
    assert max_overlap(spans) >= 2
    assert World(conn).balance(ws) == Decimal("0.00")


def test_health_and_unknown_routes_answer_the_error_body(serve):
    with serve() as url:
        health = httpx.get(url + contract.HEALTH)
        missing = httpx.get(url + "/nowhere")
        wrong = httpx.delete(url + contract.PURCHASE)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")


def test_the_openapi_document_names_every_route_status_and_error_code(serve):
    with serve() as url:
        doc = httpx.get(url + contract.OPENAPI).json()
    paths = doc["paths"]
    for path in (contract.PURCHASE, contract.PURCHASES, contract.DOWNLOAD, contract.TOPUP):
        assert path in paths
    purchase = paths[contract.PURCHASE]["post"]["responses"]
    assert {"200", "401", "402", "403", "404", "409", "422", "429", "500"} <= set(purchase)
    assert "Retry-After" in purchase["429"]["headers"]
    download = paths[contract.DOWNLOAD]["get"]["responses"]
    assert {"200", "404", "409", "410"} <= set(download)
    codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
    assert sorted(codes) == sorted(contract.ERRORS)


def test_every_refusal_and_failure_of_the_purchase_service_has_its_own_status():
    assert sorted(set(DOMAIN_ERRORS) - set(contract.ERRORS)) == []
    assert sorted(set(SERVICE_ERRORS) - set(contract.ERRORS)) == []
    assert all(contract.ERRORS[c].status >= 500 for c in SERVICE_ERRORS)


def test_docs_serve_carries_the_error_table():
    text = (ROOT / "docs" / "serve.md").read_text()
    assert contract.error_table() in text


def test_serve_refuses_to_start_without_a_secret(monkeypatch, capsys):
    monkeypatch.delenv("HARNESS_JWT_SECRET", raising=False)
    assert cli(["serve", "--dsn", "postgresql:///nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HARNESS_JWT_SECRET" in err[0] and "--dev-secret" in err[0]


def test_a_short_secret_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_JWT_SECRET", "short")
    assert cli(["serve", "--dsn", "postgresql:///nowhere"]) == 2
    assert "32 bytes" in capsys.readouterr().err


def test_issue_token_prints_a_token_the_server_accepts(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
    ws, user = uuid.uuid4(), uuid.uuid4()
    assert cli(["serve", "--issue-token", str(ws), str(user)]) == 0
    token = capsys.readouterr().out.strip()
    assert tokens.verify(SECRET, token) == tokens.Principal(ws, user)
    assert cli(["serve", "--issue-token", "a", "b"]) == 2


def test_serve_as_a_process_with_two_workers_answers_and_stops_cleanly_on_ctrl_c(
    admin_dsn, tmp_path
):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")},
        "HARNESS_JWT_SECRET": SECRET,
        "HARNESS_STATE_DIR": str(tmp_path),
    }
    name = database.scratch_name("harness_test_serve")
    dsn = database.create_database(admin_dsn, name)
    try:
        args = ["--dsn", dsn, "--port", "0", "--workers", "2"]
        with ServeProcess(args, env=env) as proc:
            health = httpx.get(proc.url + contract.HEALTH)
            recorded = json.loads(next(tmp_path.glob("serve-*.json")).read_text())
            code = proc.stop()
        assert health.status_code == 200
        assert recorded == {"url": proc.url, "dsn": dsn}
        assert code == 0
        assert "harness serve: stopped" in "\n".join(proc.output)
        assert not list(tmp_path.glob("serve-*.json"))
    finally:
        database.drop_database(admin_dsn, name)


def test_serve_without_dsn_drops_its_scratch_database_when_stopped(admin_dsn, tmp_path):
    """On the server `harness db start` left (here: the suite's), a scratch database that
    is gone once Ctrl-C stopped the server."""
    # The state `harness db start` writes: its server's directory holds a postmaster.pid
    # naming a live process (here this one, the suite's server being elsewhere).
    data = tmp_path / "pg" / "data"
    data.mkdir(parents=True)
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n")
    state = tmp_path / "db.json"
    state.write_text(
        json.dumps({"dsn": admin_dsn, "provider": "test", "workdir": str(tmp_path / "pg")})
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")},
        "HARNESS_STATE_DIR": str(tmp_path),
    }
    with ServeProcess(["--dev-secret", "--port", "0"], env=env) as proc:
        line = next(x for x in proc.output if x.startswith("harness serve: scratch database"))
        name = line.split("dbname=")[1].split()[0]
        with database.connect(admin_dsn) as conn:
            assert database.scalar(
                conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
            )
        assert proc.stop() == 0
    time.sleep(0.2)
    with database.connect(admin_dsn) as conn:
        assert not database.scalar(
            conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
        )
    assert any("development secret: HARNESS_JWT_SECRET=" in x for x in proc.output)


def test_a_top_up_credits_a_payment_reference_once_and_emails_once(serve, world, conn):
    ws, (user,) = world.workspace(balance="1.00")

    def topup(amount, ref):
        return httpx.post(
            url + contract.TOPUP,
            json={"amount": amount, "package": "starter", "payment_reference": ref},
            headers=auth(ws, user),
        )

    with serve() as url:
        first, again, other = topup("5.00", "pay-1"), topup("5.00", "pay-1"), topup("7.00", "pay-1")
    assert first.status_code == 200 and first.json()["new_balance"] == "6.00"
    assert first.json()["replayed"] is False
    assert again.status_code == 200 and again.json() | {"replayed": False} == first.json()
    assert again.json()["replayed"] is True
    assert (other.status_code, other.json()["code"]) == (409, "payment_reference_mismatch")
    assert World(conn).balance(ws) == Decimal("6.00")
    emails = database.scalar(
        conn,
        "SELECT count(*) FROM email_jobs WHERE kind = 'credit_purchase' AND workspace_id = %s",
        (ws,),
    )
    assert emails == 1  # this top-up's, not the repeat's (World's opening credit sends none)
