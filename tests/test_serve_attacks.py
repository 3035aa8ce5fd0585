"""harness serve under attack: hostile tokens, odd and huge bodies, header injection
through a download, a payment webhook delivered many times at once. Every bad request
gets a refusal with its stable code (never a 5xx) and leaves every row as it was. One
server per test, on the test's own migrated clone; nothing is mocked."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from decimal import Decimal

import httpx
import jwt

from harness import db as database
from harness.drivers.serve import contract, tokens
from harness.drivers.serve.app import AppConfig
from harness.drivers.serve.limits import Limits
from harness.drivers.serve.server import running
from harness.testing import World, max_overlap, release_together, snapshot

SECRET = "a" * 40


def serve(db):
    return running(AppConfig(dsn=db, secret=SECRET, limits=Limits(0, 0)))


def signed(claims, key=SECRET, algorithm="HS256", **kw):
    return jwt.encode(claims, key, algorithm=algorithm, **kw)


def test_hostile_tokens_are_refused_and_buy_nothing(db, world, conn):
    ws, (user,) = world.workspace(balance="10.00")
    other, _ = world.workspace(balance="10.00")
    leads = world.leads(1, "1.00")
    now = int(time.time())
    good = {"sub": str(user), "workspace_id": str(ws), "exp": now + 60}
    valid = tokens.issue(SECRET, ws, user)
    head, payload, _sig = valid.split(".")
    forged = signed({**good, "workspace_id": str(other)}).split(".")[1]
    unauthenticated = {
        "HS512 with the secret": signed(good, SECRET + "x" * 30, "HS512"),
        "another secret": signed(good, "b" * 40),
        "alg none": signed(good, None, "none"),
        "no exp": signed({"sub": str(user), "workspace_id": str(ws)}),
        "expired": signed({**good, "exp": now - 5}),
        "not yet valid": signed({**good, "nbf": now + 600}),
        "exp not a number": signed({**good, "exp": "soon"}),
        "sub not a UUID": signed({**good, "sub": 5}),
        "workspace an object": signed({**good, "workspace_id": {"id": str(ws)}}),
        "no signature": f"{head}.{payload}.",
        "payload swapped under the signature": f"{head}.{forged}.{_sig}",
        "huge": "a" * 60_000,
        "not base64": "!!!.***.???",
    }
    before = snapshot(conn)
    answers = {}
    with serve(db) as url:
        for name, token in unauthenticated.items():
            r = httpx.post(
                url + contract.PURCHASE,
                json=contract.purchase_body(leads),
                headers={"Authorization": f"Bearer {token}"},
            )
            answers[name] = (r.status_code, r.json()["code"])
        for scheme in ("Basic dXNlcjpwdw==", "Bearer", f"Token {valid}", valid):
            r = httpx.post(
                url + contract.PURCHASE,
                json=contract.purchase_body(leads),
                headers={"Authorization": scheme},
            )
            answers[f"header {scheme[:12]!r}"] = (r.status_code, r.json()["code"])
        # Validly signed, but for a workspace the user is no member of.
        stranger = httpx.post(
            url + contract.PURCHASE,
            json=contract.purchase_body(leads),
            headers=contract.headers(tokens.issue(SECRET, other, user)),
        )
    assert {k: v for k, v in answers.items() if v != (401, "not_authenticated")} == {}
    assert (stranger.status_code, stranger.json()["code"]) == (403, "not_authorized")
    assert snapshot(conn) == before


def test_odd_and_huge_bodies_are_refused_before_anything_changes(db, world, conn):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(2, "1.00")
    headers = contract.headers(tokens.issue(SECRET, ws, user))
    as_json = {**headers, "Content-Type": "application/json"}
    ok = json.dumps(contract.purchase_body(leads))
    too_many = json.dumps(contract.purchase_body([uuid.uuid4()] * 1001))
    big = '{"lead_ids": ["' + "a" * (contract.MAX_BODY_BYTES + 1) + '"]}'

    def chunks():  # no Content-Length: the limit must hold on what arrives
        for _ in range(contract.MAX_BODY_BYTES // 8192 + 2):
            yield b" " * 8192

    purchase_cases = {
        "text/plain": (ok, {**headers, "Content-Type": "text/plain"}, 422),
        "no JSON": ("{", as_json, 422),
        "null": ("null", as_json, 422),
        "an array": ("[]", as_json, 422),
        "NaN": ('{"lead_ids": NaN, "payment_method": "credits"}', as_json, 422),
        "deeply nested": ("[" * 100_000 + "]" * 100_000, as_json, 413),
        "nested, small": ('{"lead_ids": ' + "[" * 5000 + "]" * 5000 + "}", as_json, 422),
        "unknown field": (ok[:-1] + ', "discount": 100}', as_json, 422),
        "another payment method": (ok.replace('"credits"', '"card"'), as_json, 422),
        "1001 leads": (too_many, as_json, 422),
        "over the limit": (big, as_json, 413),
        "chunked over the limit": (chunks(), as_json, 413),
    }
    topup_cases = {
        "right-to-left override": "x\u202eexe.txt",
        "line separator": "a\u2028b",
        "zero-width space": "star\u200bter",
        "C1 control": "a\x85b",
        "control character": "a\x07",
        "empty": "",
    }
    before = snapshot(conn)
    got, want = {}, {}
    with serve(db) as url:
        for name, (body, h, status) in purchase_cases.items():
            r = httpx.post(url + contract.PURCHASE, content=body, headers=h, timeout=60)
            got[name] = (r.status_code, r.json()["code"])
            want[name] = (status, "payload_too_large" if status == 413 else "invalid_request")
        for name, package in topup_cases.items():
            r = httpx.post(
                url + contract.TOPUP,
                json={"amount": "5.00", "package": package, "payment_reference": name},
                headers=headers,
            )
            got[name] = (r.status_code, r.json()["code"])
            want[name] = (422, "invalid_request")
        # A lone surrogate is valid JSON but no text PostgreSQL can store.
        r = httpx.post(
            url + contract.TOPUP,
            content='{"amount": "5.00", "package": "\\ud800", "payment_reference": "s"}',
            headers={**headers, "Content-Type": "application/json"},
        )
        got["lone surrogate"] = (r.status_code, r.json()["code"])
        want["lone surrogate"] = (422, "invalid_request")
        bad_refs = ["a\nb", "é", "x" * (contract.MAX_KEY_LENGTH + 1)]
        for ref in bad_refs:
            r = httpx.post(
                url + contract.TOPUP,
                json={"amount": "5.00", "package": "starter", "payment_reference": ref},
                headers=headers,
            )
            got[ref[:8]] = (r.status_code, r.json()["code"])
            want[ref[:8]] = (422, "invalid_request")
        still_up = httpx.get(url + contract.HEALTH)
    assert got == want
    assert still_up.status_code == 200
    assert snapshot(conn) == before


def test_nothing_a_lead_holds_reaches_a_download_header_or_breaks_a_row(db, world, conn):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(2, "1.00")
    hostile = 'x"\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>'
    conn.execute("UPDATE leads SET company = %s WHERE id = %s", (hostile, leads[0]))
    with serve(db) as url:
        pid = httpx.post(
            url + contract.PURCHASE,
            json=contract.purchase_body(leads),
            headers=contract.headers(tokens.issue(SECRET, ws, user)),
        ).json()["purchase"]["id"]
        r = httpx.get(
            url + contract.DOWNLOAD.format(purchase_id=pid),
            headers=contract.headers(tokens.issue(SECRET, ws, user)),
        )
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="purchase-{pid}.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
    assert len(rows) == 2
    assert sorted(row["company"] for row in rows)[-1] == hostile


def test_a_top_up_delivered_many_times_at_once_is_credited_once(db, world, conn):
    """A payment webhook retried by the provider while the first delivery still runs."""
    n = 8
    ws, (user,) = world.workspace(balance="1.00")
    headers = contract.headers(tokens.issue(SECRET, ws, user))
    body = {"amount": "25.00", "package": "starter", "payment_reference": "pay_webhook_1"}
    with serve(db) as url, httpx.Client(timeout=60) as client:

        def deliver(_i):
            return client.post(url + contract.TOPUP, json=body, headers=headers)

        outcomes, spans = release_together(n, deliver)
    assert max_overlap(spans) >= 2
    answers = [(o.status_code, o.json()["replayed"], o.json()["new_balance"]) for o in outcomes]
    assert sorted(answers) == [(200, False, "26.00")] + [(200, True, "26.00")] * (n - 1)
    assert World(conn).balance(ws) == Decimal("26.00")
    emails = database.scalar(
        conn,
        "SELECT count(*) FROM email_jobs WHERE kind = 'credit_purchase' AND workspace_id = %s",
        (ws,),
    )
    assert emails == 1
