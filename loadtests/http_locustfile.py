# ruff: noqa: E402, I001  (the import order below is deliberate)
"""Locust users that buy leads over HTTP from any application implementing the purchase
route (``harness serve``, or a team's own app): the route's contract, not its database.

Run by ``harness load --target URL --dsn DSN`` or ``harness load --http`` (headless), or
by hand::

    HARNESS_DSN="$APP_DSN" HARNESS_JWT_SECRET=... HARNESS_LOAD_RUN=load-1a2b3c- \\
      locust -f loadtests/http_locustfile.py --host https://staging.example.com

Configuration, by environment (the same on the master and on every worker):

* ``HARNESS_DSN``: the application's database, where ``harness load`` seeded the run's
  workspaces, members and leads; read once per process for the plan.
* ``HARNESS_LOAD_RUN``: the run's name prefix (its workspaces and leads).
* ``HARNESS_JWT_SECRET``: the application's token secret; each buyer's bearer token is
  signed with it.
* ``HARNESS_LOAD_LEADS_PER_PURCHASE``, ``HARNESS_LOAD_THINK_MS``: as for the SQL users.

Each request is reported under ``<endpoint> [<status> <outcome>]``, e.g. ``POST
/api/marketplace/purchase [200 purchased]`` or ``[402 insufficient_credits]``: a
documented answer is a success (the application said no, correctly); anything else (a
5xx, a status or body the contract does not have) is a failure. One purchase in ten is
retried with its Idempotency-Key and must replay; one in ten is followed by a read of the
purchase and of its download. One refusal in four for want of credits is followed by a
top-up of that wallet under a fresh payment reference (one top-up in ten is sent again and
must replay, crediting nothing), so a wallet many members share stays funded and contended
for the whole run: purchases and top-ups race for its row, the race a lost credit or an
overdraft would come from, and not only until it first runs dry.
"""

# Import order matters, as in locustfile.py: locust monkey-patches the standard library
# with gevent when it is imported, and psycopg (which reads the plan) picks its wait
# function when *it* is imported; imported the other way round it would block every user.
import locust  # noqa: F401  (first: it monkey-patches the standard library)
import gevent
from locust import FastHttpUser, events, task
from locust.user.task import LOCUST_STATE_STOPPING

import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.drivers import load

_problem = load.cooperative_wait_problem()
if _problem:
    sys.exit(f"http_locustfile: refusing to run: {_problem}")

from harness import env
from harness.drivers.serve import contract

events.init.add_listener(load.save_failures_at_quit)

THINK_TIME_S = env.read("HARNESS_LOAD_THINK_MS") / 1000
RETRY_SHARE = 0.1  # purchases and top-ups retried under their key: each must replay
TOPUP_SHARE = 0.25  # refusals for want of credits followed by a top-up of that wallet
TOPUP_AMOUNT = "10.00"
READ_SHARE = 0.1  # purchases followed by a read of the record and the download


class HttpBuyer(FastHttpUser):
    """One client of the application, buying as fast as it answers. (FastHttpUser: its
    client costs a fraction of ``requests``' CPU per request, so on a machine shared with
    the application the load generator is not what limits the load.)"""

    def on_start(self) -> None:
        self.plan = load.http_plan_for(self.environment)

    @task
    def buy_until_stopped(self) -> None:
        # One looping task, as in locustfile.py: a graceful stop ends the user between
        # two purchases, never inside one.
        while self._state != LOCUST_STATE_STOPPING:
            self.purchase()
            gevent.sleep(THINK_TIME_S)

    def call(self, method: str, path: str, name: str, **kwargs) -> tuple[str, dict]:
        """One request, named by its endpoint, status and outcome."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as r:
            try:
                body = r.json() if "json" in r.headers.get("content-type", "") else {}
            except ValueError:
                body = {}
            if path.startswith("/api/marketplace/download/") and r.status_code == 200:
                kind = "csv" if r.text.startswith(contract.CSV_COLUMNS[0]) else "unexpected"
            elif name == contract.PURCHASE:
                kind = contract.outcome(r.status_code, body)
            elif name == contract.TOPUP and r.status_code == 200:
                replayed = body.get("replayed")
                kind = "replayed" if replayed is True else "credited"
                if body.get("success") is not True or not isinstance(replayed, bool):
                    kind = "unexpected"
            elif r.status_code == 200:
                kind = "ok"
            else:
                kind = contract.outcome(r.status_code, body | {"success": False})
            r.request_meta["name"] = f"{method} {name} [{r.status_code} {kind}]"
            if kind == "unexpected":
                r.failure(f"{r.status_code} {r.text[:200]}")
            else:
                r.success()
        return kind, body if isinstance(body, dict) else {}

    def purchase(self) -> None:
        _ws, _user, token = random.choice(self.plan.buyers)
        leads = random.sample(self.plan.leads, self.plan.leads_per_purchase)
        key = str(uuid.uuid4())
        body = contract.purchase_body(leads)
        headers = contract.headers(token, key)
        kind, answer = self.call(
            "POST", contract.PURCHASE, contract.PURCHASE, json=body, headers=headers
        )
        if kind == "insufficient_credits" and random.random() < TOPUP_SHARE:
            self.top_up(token)
        if kind != "purchased":
            return
        if random.random() < RETRY_SHARE:
            again, _replay = self.call(
                "POST", contract.PURCHASE, contract.PURCHASE, json=body, headers=headers
            )
            if again == "purchased":  # a second purchase under one key: the contract broken
                self.broken(
                    f"POST {contract.PURCHASE} [retry bought again]",
                    "a retry with the same Idempotency-Key bought again",
                )
        pid = contract.purchase_id_of(answer)
        if pid and random.random() < READ_SHARE:
            auth = contract.headers(token)
            self.call(
                "GET", contract.PURCHASES.format(purchase_id=pid), contract.PURCHASES, headers=auth
            )
            self.call(
                "GET", contract.DOWNLOAD.format(purchase_id=pid), contract.DOWNLOAD, headers=auth
            )

    def top_up(self, token: str) -> None:
        """Refill the token's wallet, as a buyer refused for want of credits would."""
        body = {
            "amount": TOPUP_AMOUNT,
            "package": "load",
            "payment_reference": f"load-{uuid.uuid4()}",
        }
        auth = contract.headers(token)
        kind, _answer = self.call("POST", contract.TOPUP, contract.TOPUP, json=body, headers=auth)
        if kind == "credited" and random.random() < RETRY_SHARE:
            again, _replay = self.call(
                "POST", contract.TOPUP, contract.TOPUP, json=body, headers=auth
            )
            if again == "credited":  # one payment credited twice: the contract broken
                self.broken(
                    f"POST {contract.TOPUP} [retry credited again]",
                    "a retry with the same payment_reference credited again",
                )

    def broken(self, name: str, what: str) -> None:
        """Report a failure no single answer shows: the contract broken across two."""
        self.environment.events.request.fire(
            request_type="POST",
            name=name,
            response_time=0,
            response_length=0,
            exception=AssertionError(what),
            context={},
        )
