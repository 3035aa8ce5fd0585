"""http.*: a running application that implements the purchase route, judged over HTTP
(``harness verify --http URL --dsn DSN``): ``harness serve``, or a team's own app.

The checks build their own workspaces, members and leads in the application's database
(DSN) with :class:`harness.testing.World`, sign bearer tokens for those members with the
application's secret (``HARNESS_JWT_SECRET``), and leave only what real purchases and
top-ups leave, so the invariant checker can judge the database afterwards. Without
``--http`` they are skipped; with it, none of them may end skipped.

Every failure shows the request that failed: method, path, body, status and answer.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from harness import db
from harness.drivers.serve import contract, tokens
from harness.money.invariants import check_invariants, summary
from harness.proofs.verify.context import CheckContext, HttpTarget, q
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, CheckSkipped, check
from harness.testing import InFlightMonitor, World, max_overlap, release_together

HOT_WALLET_REQUESTS = 24
HOT_WALLET_BALANCE = Decimal("10.00")
HOT_WALLET_PRICE = Decimal("0.70")  # 14 affordable, 0.20 left: a stale read overdraws
IDEMPOTENT_REQUESTS = 16
ROUNDS = 3  # races retried until overlap is observed; any round with a problem fails
GATE_SETTLE_S = 0.5  # the queue at a held row is taken as complete once this long unchanged
GATE_MAX_S = 10.0  # and released after this long whatever its length
SCHEMA_EXAMPLES = 40  # generated requests per operation
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 6
FUZZ_MEMBERS = 100  # the fuzzer speaks for many members, so no one user's limit is reached
TIMEOUT_S = 60


def _target(ctx: CheckContext) -> HttpTarget:
    if ctx.http is None:
        raise CheckSkipped("no --http URL: the http checks need a running application")
    return ctx.http


def shown(method: str, path: str, body: Any, response: httpx.Response | BaseException) -> str:
    """One request and what came back, for evidence."""
    sent = f"{method} {path}" + (f" {json.dumps(body)}" if body is not None else "")
    if isinstance(response, BaseException):
        return f"{sent} -> {type(response).__name__}: {' '.join(str(response).split())[:200]}"
    text = " ".join(response.text.split())[:300]
    return f"{sent} -> {response.status_code} {text}"


def _answer(r: httpx.Response | BaseException) -> tuple[int, str, dict[str, Any]]:
    """(status, outcome word, body) of a purchase answer; status 0 when none came."""
    if isinstance(r, BaseException):
        return 0, "unexpected", {}
    try:
        body = r.json()
    except ValueError:
        body = {}
    return (
        r.status_code,
        contract.outcome(r.status_code, body),
        body if isinstance(body, dict) else {},
    )


def _workspace_state(
    t: HttpTarget, ctx: CheckContext, ws: uuid.UUID
) -> tuple[Decimal | None, int, int]:
    """(balance, completed purchases, all purchases) of one workspace."""
    with ctx.connect(t.dsn) as conn:
        balance = World(conn).balance(ws)
        completed, total = conn.execute(q("http", "workspace-purchases"), (ws,)).fetchone() or (
            0,
            0,
        )
    return balance, int(completed), int(total)


def _race(
    t: HttpTarget, n: int, request: Callable[[httpx.Client, int], httpx.Response]
) -> tuple[list[Any], int, int]:
    """``n`` requests released together; their answers, the client-side overlap and the
    peak of transactions in flight in the application's database."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    with httpx.Client(base_url=t.url, timeout=TIMEOUT_S, limits=limits) as client:
        client.get(contract.HEALTH)  # the connection pool warms up outside the race
        with InFlightMonitor(t.dsn) as monitor:
            outcomes, spans = release_together(n, lambda i: request(client, i))
    return outcomes, max_overlap(spans), monitor.max_seen


def _gated_race(
    t: HttpTarget,
    ctx: CheckContext,
    ws: uuid.UUID,
    n: int,
    request: Callable[[httpx.Client, int], httpx.Response],
) -> tuple[list[Any], int, int, int]:
    """:func:`_race` with the workspace's credits row held meanwhile, as a purchase in
    progress would hold it: every purchase that reaches its debit queues there, so once
    the queue stops growing it is released and the queued debits run back to back. That
    is the schedule that exposes a debit computed from a balance read before the lock
    (each queued purchase read the same balance), which an HTTP server, too slow to keep
    many transactions open at once, would otherwise reach only by luck. Also returns how
    many sessions were waiting when the row was released."""
    result: list[tuple[list[Any], int, int]] = []
    racing = threading.Thread(target=lambda: result.append(_race(t, n, request)))
    waiting = 0
    with ctx.connect(t.dsn) as holder, ctx.connect(t.dsn) as watcher:
        try:
            with holder.transaction():  # its end is the release: the queued debits run
                holder.execute(q("http", "hold-credits"), (ws,))
                racing.start()
                since = started = time.monotonic()
                while racing.is_alive() and time.monotonic() - started < GATE_MAX_S:
                    now = int(db.scalar(watcher, q("http", "waiting-on-lock")))
                    if now != waiting:
                        waiting, since = now, time.monotonic()
                    elif waiting >= n or (
                        waiting >= 2 and time.monotonic() - since >= GATE_SETTLE_S
                    ):
                        break
                    time.sleep(0.01)
        finally:
            if racing.ident is not None:  # started: its requests end before the check does
                racing.join()
    outcomes, overlap, seen = result[0]
    return outcomes, overlap, seen, waiting


def _evidence_of_overspend(
    answers: list[tuple[int, str, dict[str, Any]]],
    outcomes: list[Any],
    leads: list[uuid.UUID],
    allowed: int,
) -> str:
    """The requests that show it: two purchases answered with the same credits remaining
    (each debited the same balance), else the first purchase beyond the affordable."""
    bought = [i for i, (_, kind, _) in enumerate(answers) if kind == "purchased"]
    if len(bought) <= allowed:
        return ""
    by_remaining: dict[Any, int] = {}
    for i in bought:
        left = answers[i][2].get("creditsRemaining")
        if left in by_remaining:
            pair = (by_remaining[left], i)
            return "; two purchases left the same balance: " + " and ".join(
                shown("POST", contract.PURCHASE, contract.purchase_body([leads[j]]), outcomes[j])
                for j in pair
            )
        by_remaining[left] = i
    extra = bought[allowed]
    return "; one beyond them: " + shown(
        "POST", contract.PURCHASE, contract.purchase_body([leads[extra]]), outcomes[extra]
    )


@check("http.hot-wallet")
def hot_wallet(ctx: CheckContext) -> str:
    """24 purchases of one 0.70 lead each, by 24 members of one workspace holding 10.00,
    released together over HTTP while the credits row is held, then let through at once:
    exactly the 14 affordable succeed, every other answer is 402 insufficient_credits,
    and 0.20 is left (transactions seen queued together at the debit)."""
    t = _target(ctx)
    n, price, balance = HOT_WALLET_REQUESTS, HOT_WALLET_PRICE, HOT_WALLET_BALANCE
    allowed = int(balance // price)
    for attempt in range(1, ROUNDS + 1):
        with ctx.connect(t.dsn) as conn:
            world = World(conn)
            ws, users = world.workspace(balance=balance, members=n)
            leads = world.leads(n, price)
        signed = [tokens.issue(t.secret, ws, u) for u in users]

        def buy(
            client: httpx.Client, i: int, leads: list[uuid.UUID] = leads, signed: list[str] = signed
        ) -> httpx.Response:
            return client.post(
                contract.PURCHASE,
                json=contract.purchase_body([leads[i]]),
                headers=contract.headers(signed[i]),
            )

        outcomes, overlap, seen, queued = _gated_race(t, ctx, ws, n, buy)
        answers = [_answer(o) for o in outcomes]
        kinds = Counter(kind for _, kind, _ in answers)
        final, completed, made = _workspace_state(t, ctx, ws)
        problems = []
        bad = [
            i
            for i, (_, kind, _) in enumerate(answers)
            if kind not in ("purchased", "insufficient_credits")
        ]
        if bad:
            first = bad[0]
            problems.append(
                f"{len(bad)} answer(s) neither a purchase nor 402 insufficient_credits "
                f"({dict(kinds)}); first: "
                + shown(
                    "POST",
                    contract.PURCHASE,
                    contract.purchase_body([leads[first]]),
                    outcomes[first],
                )
            )
        if kinds["purchased"] != allowed:
            problems.append(
                f"{kinds['purchased']} purchases succeeded, the balance allows {allowed}"
                + _evidence_of_overspend(answers, outcomes, leads, allowed)
            )
        want = balance - allowed * price
        if final != want:
            problems.append(f"final balance {final}, want {want}")
        if completed != allowed or made != allowed:
            problems.append(f"{made} purchase rows ({completed} completed), want {allowed}")
        if problems:
            raise CheckFailed(
                f"{n} x {price} on {balance} over HTTP ({queued} queued at the credits row "
                f"together): " + "; ".join(problems)
            )
        if overlap >= 2 and seen >= 2 and queued >= 2:
            return (
                f"{n} x {price} on {balance} over HTTP: {kinds['purchased']} succeeded "
                f"(= floor), {kinds['insufficient_credits']} answered 402, final {final}; "
                f"{overlap} requests open at once, {seen} transactions in flight, "
                f"{queued} queued at the credits row together (round {attempt})"
            )
    raise CheckInconclusive(
        f"in {ROUNDS} rounds the requests never overlapped (last: {overlap} open at once, "
        f"{seen} transactions in flight, {queued} queued at the credits row): the race "
        "did not happen"
    )


@check("http.idempotency")
def idempotency(ctx: CheckContext) -> str:
    """16 identical purchases under one Idempotency-Key, released together over HTTP:
    one purchase exists and one debit; every answer is that purchase (or 409
    purchase_in_progress while it runs); a later retry replays it."""
    t = _target(ctx)
    n = IDEMPOTENT_REQUESTS
    for attempt in range(1, ROUNDS + 1):
        with ctx.connect(t.dsn) as conn:
            world = World(conn)
            ws, (user,) = world.workspace(balance="10.00")
            leads = world.leads(2, "1.00")
        key = f"verify-{uuid.uuid4()}"
        body = contract.purchase_body(leads)
        sent = contract.headers(tokens.issue(t.secret, ws, user), key)

        def buy(
            client: httpx.Client,
            _i: int,
            body: dict[str, Any] = body,
            headers: dict[str, str] = sent,
        ) -> httpx.Response:
            return client.post(contract.PURCHASE, json=body, headers=headers)

        outcomes, overlap, seen = _race(t, n, buy)
        answers = [_answer(o) for o in outcomes]
        with httpx.Client(base_url=t.url, timeout=TIMEOUT_S) as client:
            retry = client.post(contract.PURCHASE, json=body, headers=sent)
        final, completed, made = _workspace_state(t, ctx, ws)
        kinds = Counter(kind for _, kind, _ in answers)
        ok_kinds = {"purchased", "replayed", "purchase_in_progress", "rate_limited"}
        problems = []
        bad = [i for i, (_, kind, _) in enumerate(answers) if kind not in ok_kinds]
        if bad:
            problems.append(
                f"{len(bad)} answer(s) other than the purchase or 409 purchase_in_progress "
                f"({dict(kinds)}); first: "
                + shown("POST", contract.PURCHASE, body, outcomes[bad[0]])
                + f" [{contract.IDEMPOTENCY_HEADER}: {key}]"
            )
        ids = {
            contract.purchase_id_of(b)
            for _, kind, b in answers
            if kind in ("purchased", "replayed")
        }
        if len(ids) > 1:
            problems.append(
                f"the answers name {len(ids)} different purchases: {sorted(map(str, ids))}"
            )
        if made != 1 or completed != 1:
            problems.append(f"{made} purchase rows ({completed} completed) for one key, want 1")
        if final != Decimal("8.00"):
            problems.append(f"final balance {final}, want 8.00 (one debit of 2.00)")
        r_status, r_kind, r_body = _answer(retry)
        if r_kind != "replayed" or (ids and contract.purchase_id_of(r_body) not in ids):
            problems.append(
                "a retry after the race did not replay the purchase: "
                + shown("POST", contract.PURCHASE, body, retry)
                + f" [{contract.IDEMPOTENCY_HEADER}: {key}]"
            )
        if problems:
            raise CheckFailed(f"{n} requests with one key over HTTP: " + "; ".join(problems))
        if overlap >= 2:
            return (
                f"{n} requests with one key over HTTP: one purchase, one debit (balance "
                f"{final}); answers {dict(kinds)}; the retry replayed it ({r_status}); "
                f"{overlap} requests open at once, {seen} transactions in flight "
                f"(round {attempt})"
            )
    raise CheckInconclusive(f"in {ROUNDS} rounds the requests never overlapped: nothing proved")


@check("http.schema", group="hypothesis")
def schema(ctx: CheckContext) -> str:
    """schemathesis over /openapi.json: the documents' examples, generated requests for
    every operation, and stateful sequences along its links (a purchase, then its record
    and its download), as members of a workspace with credits; passes only if no answer
    is a 5xx and every answer conforms to the document (status, content type, headers,
    body)."""
    t = _target(ctx)
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import checks as st_checks

    with ctx.connect(t.dsn) as conn:
        world = World(conn)
        ws, users = world.workspace(balance="1000.00", members=FUZZ_MEMBERS)
        fresh = iter(world.leads(STATEFUL_EXAMPLES * STATEFUL_STEPS * 2, "1.00"))
    signed = [tokens.issue(t.secret, ws, u) for u in users]
    turn = itertools.count()
    lock = threading.Lock()

    def auth() -> dict[str, str]:
        with lock:
            return contract.headers(signed[next(turn) % len(signed)])

    conformance = [
        st_checks.not_a_server_error,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_headers_conformance,
        st_checks.response_schema_conformance,
    ]
    try:
        api = schemathesis.openapi.from_url(t.url + contract.OPENAPI)
    except Exception as exc:
        raise CheckFailed(
            f"GET {contract.OPENAPI} did not give an OpenAPI document: {exc}"
        ) from exc
    seed = ctx.rng("http.schema").randrange(2**32)
    tuning = settings(
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    calls = Counter[str]()
    failures: list[str] = []

    def judge(case: Any, response: Any, **kwargs: Any) -> None:
        # Recorded, not raised: replaying a sequence against a live server meets another
        # state (its earlier purchases exist now), which hypothesis would call flaky and
        # report instead of the failure itself.
        try:
            case.validate_response(response, checks=conformance, **kwargs)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup
            text = f"{case.operation.label}: {_failure_text(exc)}"
            with lock:
                if len(failures) < 5 and text not in failures:
                    failures.append(text)

    def exercise(strategy: Any, label: str, examples: int) -> None:
        @settings(tuning, max_examples=examples)
        @given(case=strategy)
        def run(case: Any) -> None:
            calls[label] += 1
            headers = auth()
            response = case.call(base_url=t.url, headers=headers, timeout=TIMEOUT_S)
            judge(case, response, headers=headers)

        run._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
        run()

    operations = 0
    for result in api.get_all_operations():
        try:
            operation = result.ok()  # type: ignore[union-attr]
        except Exception as exc:  # an operation the document describes badly
            failures.append(f"the document has an invalid operation: {exc}")
            continue
        operations += 1
        label = operation.label
        for strategy in api.get_strategies_from_examples(operation):
            exercise(strategy, label, 5)
        exercise(operation.as_strategy(), label, SCHEMA_EXAMPLES)
    machine = api.as_state_machine()

    class Purchases(machine):  # type: ignore[misc, valid-type]
        """The document's links, with real leads put into some purchases so that the
        sequences reach a purchase's record and download."""

        def before_call(self, case: Any) -> None:
            calls["stateful"] += 1
            if case.operation.label.startswith("POST " + contract.PURCHASE) and isinstance(
                case.body, dict
            ):
                # Leads never bought before: the purchase succeeds whenever it is tried, so
                # the sequence hypothesis explores does not depend on what ran before it.
                with lock:
                    picked = list(itertools.islice(fresh, 1 + calls["stateful"] % 2))
                if picked:
                    case.body = contract.purchase_body(picked)
                    if case.headers and contract.IDEMPOTENCY_HEADER in case.headers:
                        # A generated key would meet its own earlier use with other leads.
                        case.headers[contract.IDEMPOTENCY_HEADER] = f"fuzz-{uuid.uuid4()}"

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": t.url, "headers": auth(), "timeout": TIMEOUT_S}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            judge(case, response, transport_kwargs=kwargs)

    from hypothesis.errors import Flaky

    for attempt in range(3):
        try:
            Purchases.run(
                settings=settings(
                    tuning,
                    max_examples=STATEFUL_EXAMPLES,
                    stateful_step_count=STATEFUL_STEPS,
                    phases=[Phase.generate],
                )
            )
            break
        except Flaky as exc:
            # The sequences depend on the server's answers; a server whose answer to a
            # replayed prefix changed (a limit reached meanwhile) makes hypothesis stop.
            if attempt == 2:
                raise CheckInconclusive(
                    f"the stateful run could not complete three times: {_failure_text(exc)}"
                ) from exc
    if failures:
        raise CheckFailed(" | ".join(failures))
    return (
        f"{sum(calls.values())} requests over {operations} operations ({calls['stateful']} "
        f"in stateful sequences): no 5xx, every answer conforms to {contract.OPENAPI}"
    )


def _failure_text(exc: BaseException) -> str:
    """schemathesis's report of a failure: what failed and the request (a curl command)."""
    text = str(exc)
    notes = getattr(exc, "__notes__", None) or []
    return " ".join(f"{text} {' '.join(notes)}".split())[:1500] or type(exc).__name__


@check("http.money-after-fuzz", final=True)
def money_after_fuzz(ctx: CheckContext) -> str:
    """After every other check has driven the application, the invariant checker over
    its whole database: every balance, ledger, sale and email still adds up."""
    t = _target(ctx)
    with ctx.connect(t.dsn) as conn:
        violations = check_invariants(conn)
        purchases = conn.execute(q("http", "totals")).fetchone()
    if violations:
        raise CheckFailed(f"on the application's database: {summary(violations)}")
    return (
        f"every invariant holds on the application's database "
        f"({purchases[0] if purchases else 0} purchases, {purchases[1] if purchases else 0} "
        f"workspaces)"
    )
