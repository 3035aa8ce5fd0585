"""The whole money lifecycle, step by step against the model (``model.lifecycle``).

A :class:`hypothesis.stateful.RuleBasedStateMachine` drives a small world (three
workspaces, six leads with ``max_sales`` 1, 2 and none, an outsider) through every
operation :mod:`harness.money.model` defines: purchases through the atomic and stepwise
flows, with and without idempotency keys (so replays, mismatches, purchases in progress
and retries of failed attempts happen), the stepwise flow cut after each step, top-ups,
the lifecycle functions called directly on purchases in every state (``refund_purchase``,
``complete_purchase``, ``reconcile_purchase``, the mark step), what a purchase delivers,
reconcile, the email worker, and a rollback and re-apply of the latest migration. Each
step runs through the scenario runner's :class:`~harness.drivers.scenarios.runner.Session`
(the code ``harness scenario run`` uses) and then: the database's answer must equal the
model's, the database's state must equal the model's (:class:`~harness.money.model.
Observation`), and the invariant checker must find nothing the model does not expect.

A failure is shrunk by hypothesis to a short sequence, reported one line per step, and
available as a scenario (:attr:`ModelFailure.scenario`) that replays it: every step
carries the model's answer as its expectation, ``[expect]`` the model's final state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from harness import db, testing
from harness.drivers.scenarios.format import (
    UNEXPECTED,
    Expect,
    LeadSpec,
    Scenario,
    Step,
    WorkspaceSpec,
    dump,
    model_world,
)
from harness.drivers.scenarios.runner import Session, StepResult, World, show_answer, smtp_url
from harness.money import model
from harness.money.invariants import Violation, check_invariants
from harness.money.repository import KeyStatus, PurchaseStatus
from harness.proofs.properties import exclusive, quiet_settings

# The default run: 24 sequences of at most 8 steps after their opening purchases, in
# three rounds of 8 (about 250 steps: 8-9 s on 2 shared cores under load). The same seed
# runs the same sequences, every one of them on any machine but a very slow one.
DEFAULT_EXAMPLES = 24
DEFAULT_STEPS = 8
ROUND = 8  # sequences per hypothesis run
# A safety net for a machine several times slower than that: no new round starts after
# this long (the evidence says so). A failure found is still shrunk, for at most
# SHRINK_SECONDS.
DEFAULT_BUDGET_SECONDS = 30.0
SHRINK_SECONDS = 10.0
FLOWS = ("atomic", "stepwise")
KEYS = (None, "k1", "k2")
AMOUNTS = (Decimal("0.50"), Decimal("1.00"), Decimal("2.50"))

# The world: w1 and w2 open with credits, w3 with no credits account; x-* are exclusive
# (max_sales 1), y-* may sell twice, z-* without limit; "stranger" belongs nowhere.
WORLD = Scenario(
    path=Path("model-lifecycle.toml"),
    name="model-lifecycle",
    description="",
    flow=None,
    workspaces=(
        WorkspaceSpec("w1", Decimal("8.00"), 2),
        WorkspaceSpec("w2", Decimal("5.00"), 1),
        WorkspaceSpec("w3", None, 1),
    ),
    partners=(),
    leads=(
        LeadSpec("x", 2, Decimal("1.00"), None, 1, 0),
        LeadSpec("y", 2, Decimal("1.50"), None, 2, 0),
        LeadSpec("z", 3, Decimal("0.50"), None, None, 0),
    ),
    steps=(Step(0, "purchase", workspaces=("w1",), leads=(("x-0",),), user="stranger"),),
    expect=Expect(),
)
MEMBERS = {ws.name: tuple(ws.member_names) for ws in WORLD.workspaces}
LEADS = tuple(WORLD.lead_names)
# The states a lifecycle function is called in, the ones only a crash leaves first and
# last (hypothesis draws the ends of a list more often than its middle).
STATES = ("pending/items", "completed", "refunded", "pending/debited", "pending/marked")
# How an opening purchase ends, and where a cut purchase stops: the cut after the items
# (the state no flow settles by itself) at an end of the list.
HOW = ("items", "purchase", "debit", "complete", "mark_sold")
AFTER = ("items", "debit", "mark_sold", "complete")
# What an opening purchase meets at once, if anything: a lifecycle function in the state
# it was left in, or a rollback and re-apply of the latest migration.
THEN = ("complete", None, "reconcile_purchase", "refund", "reapply")
# The lead a sequence's opening purchases share: an exclusive one, one that sells
# twice, one without limit.
PLAN_LEADS = ("y-0", "x-0", "z-0")


class ModelFailure(AssertionError):
    """The database and the model disagree. ``steps`` is the sequence that shows it, one
    line per step; ``scenario`` replays it as a file."""

    def __init__(self, problem: str, steps: list[str], scenario: Scenario) -> None:
        super().__init__(problem)
        self.problem = problem
        self.steps = steps
        self.scenario = scenario

    @property
    def detail(self) -> str:
        lines = [f"{i + 1:>2}. {line}" for i, line in enumerate(self.steps)]
        return f"{self.problem}\nafter {len(self.steps)} step(s):\n" + "\n".join(lines)


@dataclass
class Report:
    """What a passing run did."""

    examples: int = 0
    rounds: int = 0
    out_of_time: bool = False  # the budget ended the run before every round ran
    steps: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def lifecycle_step(step: Step, answer: model.Answer, label: str | None) -> Step:
    """``step`` as a file records it: the model's ``answer`` as its expectation, and its
    ``label`` only when the model says it made that purchase."""
    made = isinstance(answer, model.Bought | model.Crashed) and answer.purchase == label
    if isinstance(answer, model.Bought) and answer.replayed:
        made = False
    step = replace(step, label=label if made else None)
    if isinstance(answer, model.Bought):
        return replace(
            step,
            expect="replayed" if answer.replayed else "ok",
            expect_balance=answer.new_balance,
            expect_leads=answer.leads,
            expect_purchase=answer.purchase if answer.replayed else None,
        )
    if isinstance(answer, model.Crashed):
        return replace(step, expect="crashed", expect_purchase=None if made else answer.purchase)
    if isinstance(answer, model.Refused):
        return replace(step, expect=answer.code)
    if isinstance(answer, model.Reconciled):
        return replace(
            step,
            expect_completed=tuple(sorted(answer.completed)),
            expect_refunded=tuple(sorted(answer.refunded)),
            expect_emailed=tuple(sorted(answer.emails_queued)),
        )
    if isinstance(answer, model.Delivered):
        return replace(step, expect_leads=answer.to_asker)
    if isinstance(answer, Decimal):
        return replace(step, expect_balance=answer)
    if step.action in ("refund", "complete", "reconcile_purchase", "mark_sold"):
        return replace(step, expect=str(answer))
    return step


def final_expect(state: model.State) -> Expect:
    """The model's final state as a scenario's ``[expect]``."""
    world = state.world
    return Expect(
        balances={
            ws.name: state.accounts[ws.name].balance
            for ws in world.workspaces
            if ws.name in state.accounts
        },
        total_used={
            ws.name: state.accounts[ws.name].total_used
            for ws in world.workspaces
            if ws.name in state.accounts
        },
        sold=dict(sorted(state.sold.items())),
        statuses={label: p.status.value for label, p in sorted(state.purchases.items())},
        emails={
            "queued": len(state.emails),
            "sent": sum(1 for e in state.emails if e.status == "sent"),
        },
        invariants="hold",
    )


def as_scenario(
    steps: list[Step],
    state: model.State,
    *,
    name: str,
    description: str,
    flow: str | None,
    world: Scenario = WORLD,
) -> Scenario:
    """A sequence as a scenario file replays it. A scenario is judged with every purchase
    settled, so a sequence that leaves one unsettled ends with a reconcile (and the
    model's answer to it)."""
    steps = [replace(s, index=i) for i, s in enumerate(steps)]
    unsettled = (
        any(p.status is PurchaseStatus.PENDING for p in state.purchases.values())
        or bool(owed_emails(state))
        or any(k.status is KeyStatus.PROCESSING for k in state.keys.values())
    )
    if unsettled:
        state, answer = model.reconcile(state)
        steps.append(lifecycle_step(Step(len(steps), "reconcile"), answer, None))
    return replace(
        world,
        path=Path(f"{name}.toml"),
        name=name,
        description=description,
        flow=flow,
        steps=tuple(steps),
        expect=final_expect(state),
    )


def owed_emails(state: model.State) -> set[str]:
    """Purchases the model says are completed without their confirmation email yet (the
    stepwise flow cut after "complete", or ``complete_purchase`` called directly):
    reconcile queues it. The checker's ``confirmation_email_missing`` is expected for
    them until then."""
    return {
        p.label
        for p in state.purchases.values()
        if p.status is PurchaseStatus.COMPLETED and not state.emailed(p.label)
    }


class Run:
    """One database and session shared by every example (or history) of a run, reset
    between them; ``width`` pooled connections for steps run at once."""

    def __init__(
        self,
        dsn: str,
        migration_dirs: list[str] | None,
        flows: tuple[str, ...],
        world: Scenario = WORLD,
        width: int = 1,
    ):
        self.dsn = dsn
        self.flows = flows
        self.scenario = world
        self.stack = contextlib.ExitStack()
        try:
            # One connection to read states and judge invariants (its statements get
            # prepared after a few runs), one mail sink for every worker run.
            self.conn = self.stack.enter_context(db.connect(dsn))
            self.world = World.build(self.conn, world)
            url = self.stack.enter_context(smtp_url())
            self.session = Session(
                dsn,
                self.world,
                flows[0],
                width=width,
                migration_dirs=migration_dirs,
                smtp_url=url,
            )
            self.stack.callback(self.session.close)
        except BaseException:
            self.stack.close()
            raise
        self.model_world = model_world(world)
        self.report = Report()

    def close(self) -> None:
        self.stack.close()

    def reset(self) -> None:
        """Back to the world as built: no purchases, keys, emails, ledger or sales, the
        opening balances as top-ups (as the scenario builder makes them)."""
        conn = self.conn
        with conn.transaction():
            conn.execute(db.query("verify_model", "reset"))
            builder = testing.World(conn)
            for spec in self.scenario.workspaces:
                if spec.balance is not None:
                    builder.account(self.world.workspaces[spec.name], spec.balance)
        self.session.labels.clear()
        self.session.ids.clear()
        self.session.requested.clear()


def machine(run: Run) -> type[RuleBasedStateMachine]:
    """The state machine class for ``run`` (hypothesis instantiates it per example)."""

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.state = model.initial(run.model_world)
            self.log: list[str] = []
            self.steps: list[Step] = []
            self.requests: list[model.Request] = []
            self.reapplied = False
            self.worked = False
            self.failed = False  # a step disagreed: teardown must not add its own failure

        # Each sequence starts from the world as built and a few purchases of one lead by
        # both funded workspaces, made or cut after a step of the stepwise flow: so the
        # lifecycle functions meet a purchase in every state early, and purchases meet
        # over a lead (a sequence left to reach that by chance rarely does). Shrinking
        # removes those that do not matter.
        @initialize(
            lead=st.sampled_from(PLAN_LEADS),
            plan=st.lists(
                st.tuples(
                    st.sampled_from(("w1", "w2")),
                    st.sampled_from(HOW),
                    st.sampled_from(KEYS),
                    st.sampled_from(THEN),
                ),
                min_size=1,
                max_size=4,
            ),
        )
        def start(self, lead: str, plan: list[tuple[str, str, str | None, str | None]]) -> None:
            run.reset()
            run.report.examples += 1
            self.check("the world as built", None, None)
            for ws, how, key, then in plan:
                user = MEMBERS[ws][0]
                request = model.Request(ws, user, (lead,), key)
                self.requests.append(request)
                step = Step(
                    0,
                    "purchase",
                    workspaces=(ws,),
                    user=user,
                    leads=((lead,),),
                    idempotency_key=key,
                )
                label = self.state.next_label()
                if how == "purchase":
                    self.act(replace(step, flow=run.flows[0]), model.purchase, request)
                else:
                    step = replace(step, action="crash_purchase", after=how)
                    self.act(step, model.crash_purchase, request, how)
                if then == "reapply":
                    # A re-apply while the purchase just made is in flight (once a sequence).
                    made = self.state.purchases.get(label)
                    if made and made.status is PurchaseStatus.PENDING and not self.reapplied:
                        self.reapply()
                elif then is not None and label in self.state.purchases:
                    self.call(then, label)

        def teardown(self) -> None:
            """Every sequence ends settled, as a scenario file does: what is still pending
            (or owed an email, or holds its key) is reconciled, and checked once more."""
            if self.steps and not self.failed and self.unsettled():
                self.act(Step(0, "reconcile"), model.reconcile)

        # -- the driving -------------------------------------------------------------

        def act(self, step: Step, op: Any, *args: Any) -> None:
            """Run ``step`` against the database and ``op(state, *args)`` against the
            model, then compare answers, states and invariants."""
            step = replace(step, index=len(self.steps))
            proposed = self.state.next_label()
            if step.action in ("purchase", "crash_purchase"):
                args = (*args, proposed)
                step = replace(step, label=proposed)
            new_state, expected = op(self.state, *args)
            try:
                result = run.session.run(step)
            except Exception as exc:  # a step that cannot run is the finding, with its steps
                result = StepResult(step.index, step.action)
                result.answer = model.Refused(UNEXPECTED)
                result.unexpected.append(
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                )
            recorded = lifecycle_step(step, expected, proposed)
            self.steps.append(recorded)
            self.log.append(f"{describe(recorded)} -> {show_answer(expected)}")
            run.report.steps += 1
            run.report.actions[step.action] = run.report.actions.get(step.action, 0) + 1
            self.state = new_state
            self.check(describe(recorded), expected, result.answer, result.unexpected)

        def check(
            self,
            what: str,
            expected: model.Answer,
            got: model.Answer,
            unexpected: list[str] | None = None,
        ) -> None:
            problem = None
            if got != expected:
                problem = (
                    f"answer: the model says {show_answer(expected)}, "
                    f"the database {show_answer(got)}"
                )
                if unexpected:
                    problem += f" ({'; '.join(unexpected)})"
            if problem is None:
                actual = run.session.observe(run.conn)
                differences = model.observe(self.state).differences(actual)
                if differences:
                    problem = "state: " + "; ".join(differences)
                else:
                    found = unexpected_violations(check_invariants(run.conn), self.state, run)
                    if found:
                        problem = "invariants: " + "; ".join(f"{v.name}: {v.detail}" for v in found)
            if problem is not None:
                scenario = as_scenario(
                    self.steps,
                    self.state,
                    name="model-lifecycle-failure",
                    description=f"model.lifecycle found: {problem}"[:500],
                    flow=None,
                )
                self.failed = True
                raise ModelFailure(f"{what}: {problem}", list(self.log), scenario)

        def pick(self, data: st.DataObject) -> str:
            """A purchase to call a lifecycle function on: first the state (pending with
            nothing after its debit, pending with items, pending and counted sold,
            completed, refunded: whichever exist), then a purchase in it, so that every
            state is visited however rare."""
            groups: dict[str, list[str]] = {}
            for label, p in sorted(self.state.purchases.items()):
                kind = p.status.value
                if p.status is PurchaseStatus.PENDING:
                    kind += "/marked" if p.marked else "/items" if p.items else "/debited"
                groups.setdefault(kind, []).append(label)
            kind = data.draw(st.sampled_from([k for k in STATES if k in groups]))
            return str(data.draw(st.sampled_from(groups[kind])))

        # -- rules -------------------------------------------------------------------

        @rule(
            flow=st.sampled_from(run.flows),
            ws=st.sampled_from(sorted(MEMBERS)),
            data=st.data(),
            leads=st.lists(st.sampled_from(LEADS), min_size=1, max_size=2, unique=True),
            key=st.sampled_from(KEYS),
        )
        def purchase(
            self, flow: str, ws: str, data: st.DataObject, leads: list[str], key: str | None
        ) -> None:
            user = data.draw(st.sampled_from((*MEMBERS[ws], "stranger")))
            step = Step(
                0,
                "purchase",
                workspaces=(ws,),
                user=user,
                leads=(tuple(leads),),
                idempotency_key=key,
                flow=flow,
            )
            request = model.Request(ws, user, tuple(leads), key)
            self.requests.append(request)
            self.act(step, model.purchase, request)

        # The same request again (another flow, maybe): what idempotency keys are for.
        @precondition(lambda self: self.requests)
        @rule(data=st.data(), flow=st.sampled_from(run.flows))
        def retry(self, data: st.DataObject, flow: str) -> None:
            # First the state of the request's key (none, processing, completed, failed,
            # or held by another request), then a request: each path of the keys is taken.
            groups: dict[str, list[model.Request]] = {}
            for r in self.requests:
                key = self.state.keys.get((r.workspace, r.key)) if r.key else None
                if r.key is None or key is None:
                    kind = "no key" if r.key is None else "unused"
                elif (key.user, key.leads) != (r.user, frozenset(r.leads)):
                    kind = "another request's"
                else:
                    kind = key.status.value
                groups.setdefault(kind, []).append(r)
            kind = data.draw(st.sampled_from(sorted(groups)))
            request = data.draw(st.sampled_from(groups[kind]))
            step = Step(
                0,
                "purchase",
                workspaces=(request.workspace,),
                user=request.user,
                leads=(request.leads,),
                idempotency_key=request.key,
                flow=flow,
            )
            self.act(step, model.purchase, request)

        @rule(
            ws=st.sampled_from(sorted(MEMBERS)),
            leads=st.lists(st.sampled_from(LEADS), min_size=1, max_size=2, unique=True),
            key=st.sampled_from(KEYS),
            after=st.sampled_from(AFTER),
        )
        def crash_purchase(self, ws: str, leads: list[str], key: str | None, after: str) -> None:
            user = MEMBERS[ws][0]
            step = Step(
                0,
                "crash_purchase",
                workspaces=(ws,),
                user=user,
                leads=(tuple(leads),),
                idempotency_key=key,
                after=after,
            )
            request = model.Request(ws, user, tuple(leads), key)
            self.requests.append(request)
            self.act(step, model.crash_purchase, request, after)

        # Top-ups when a workspace runs low (or has no account): a rich world refuses
        # nothing, and a top-up of a full one teaches nothing new.
        @precondition(lambda self: bool(self.low()))
        @rule(data=st.data(), amount=st.sampled_from(AMOUNTS))
        def topup(self, data: st.DataObject, amount: Decimal) -> None:
            ws = data.draw(st.sampled_from(self.low()))
            step = Step(0, "topup", workspaces=(ws,), amount=amount)
            self.act(step, model.top_up, ws, amount)

        def low(self) -> list[str]:
            return [
                ws
                for ws in sorted(MEMBERS)
                if ws not in self.state.accounts or self.state.accounts[ws].balance < 3
            ]

        # The lifecycle functions, each on a purchase in whatever state it is.
        @precondition(lambda self: self.state.purchases)
        @rule(data=st.data())
        def refund(self, data: st.DataObject) -> None:
            self.call("refund", self.pick(data))

        @precondition(lambda self: self.state.purchases)
        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            self.call("complete", self.pick(data))

        @precondition(lambda self: self.state.purchases)
        @rule(data=st.data())
        def reconcile_purchase(self, data: st.DataObject) -> None:
            self.call("reconcile_purchase", self.pick(data))

        def call(self, action: str, label: str) -> None:
            """A lifecycle function on one purchase, as it is now."""
            op = {
                "refund": model.refund,
                "complete": model.complete,
                "reconcile_purchase": model.reconcile_purchase,
            }[action]
            self.act(Step(0, action, purchase=label), op, label)

        @precondition(
            lambda self: any(
                p.status is PurchaseStatus.PENDING and p.items and not p.marked
                for p in self.state.purchases.values()
            )
        )
        @rule(data=st.data())
        def mark_sold(self, data: st.DataObject) -> None:
            labels = sorted(
                label
                for label, p in self.state.purchases.items()
                if p.status is PurchaseStatus.PENDING and p.items and not p.marked
            )
            label = data.draw(st.sampled_from(labels))
            self.act(Step(0, "mark_sold", purchase=label), model.mark_sold, label)

        @precondition(lambda self: self.state.purchases)
        @rule(data=st.data(), asker=st.sampled_from(sorted(MEMBERS)))
        def leads(self, data: st.DataObject, asker: str) -> None:
            label = self.pick(data)
            buyer = self.state.purchases[label].workspace
            step = Step(0, "leads", purchase=label, workspaces=() if asker == buyer else (asker,))
            self.act(step, model.leads, label, asker)

        # Reconcile when there is something to settle (with nothing, it has nothing to say).
        @precondition(lambda self: self.unsettled())
        @rule()
        def reconcile(self) -> None:
            self.act(Step(0, "reconcile"), model.reconcile)

        def unsettled(self) -> bool:
            return (
                any(p.status is PurchaseStatus.PENDING for p in self.state.purchases.values())
                or bool(owed_emails(self.state))
                or any(k.status is KeyStatus.PROCESSING for k in self.state.keys.values())
            )

        # The worker once a sequence, when there is mail (a run costs a mail server
        # round trip per job; once shows the queue's states as well as ten times).
        @precondition(
            lambda self: not self.worked and any(e.status == "queued" for e in self.state.emails)
        )
        @rule()
        def run_worker(self) -> None:
            self.worked = True
            self.act(Step(0, "run_worker"), model.run_worker)

        @precondition(
            lambda self: (
                not self.reapplied
                and any(p.status is PurchaseStatus.PENDING for p in self.state.purchases.values())
            )
        )
        @rule()
        def reapply(self) -> None:
            self.reapplied = True
            self.act(Step(0, "reapply"), model.reapply)

    return Lifecycle


def describe(step: Step) -> str:
    """One step as one line: ``purchase w1 as w1-0 x-0,z-1 key k1 (atomic) as p1``."""
    if step.action in ("purchase", "crash_purchase"):
        leads = ",".join(step.leads[0]) if step.leads else "?"
        text = f"{step.action} {step.workspaces[0]} as {step.user} {leads}"
        if step.idempotency_key:
            text += f" key {step.idempotency_key}"
        if step.after:
            text += f" after {step.after}"
        elif step.flow:
            text += f" ({step.flow})"
        return text + (f" as {step.label}" if step.label else "")
    if step.action == "topup":
        return f"topup {step.workspaces[0]} {step.amount}"
    if step.action == "leads":
        asker = f" asked by {step.workspaces[0]}" if step.workspaces else ""
        return f"leads of {step.purchase}{asker}"
    if step.purchase:
        return f"{step.action} {step.purchase}"
    return step.action


def unexpected_violations(found: list[Violation], state: model.State, run: Run) -> list[Violation]:
    """The checker's violations less the ones the model expects: a confirmation email
    owed to a purchase completed by a crash or a direct ``complete_purchase``."""
    owed = owed_emails(state)
    out = []
    for v in found:
        if v.name == "confirmation_email_missing":
            labels = {run.session.labels.get(r["purchase_id"]) for r in v.rows}
            if labels <= owed and all(r["confirmation_jobs"] == 0 for r in v.rows):
                continue
        out.append(v)
    return out


@contextlib.contextmanager
def shrink_budget(seconds: float) -> Iterator[None]:
    """Bound hypothesis's shrinking in time (its default allows five minutes): a
    failure's sequence is shrunk for at most ``seconds``."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover - a hypothesis without the knob
        yield
        return
    saved = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if saved is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = int(seconds)
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


def run_lifecycle(
    dsn: str,
    *,
    seed_value: int = 0,
    examples: int = DEFAULT_EXAMPLES,
    steps: int = DEFAULT_STEPS,
    migration_dirs: list[str] | None = None,
    flows: tuple[str, ...] = FLOWS,
    shrink_seconds: float = SHRINK_SECONDS,
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS,
) -> Report:
    """Run the state machine against the migrated database ``dsn`` (which it empties of
    purchases between examples). Raises :class:`ModelFailure` with the shrunk sequence.

    The examples run in rounds of :data:`ROUND` sequences, each round a hypothesis run
    seeded from ``seed_value`` and its number, until ``examples`` have run or, after a
    round, ``budget_seconds`` have passed: the same seed gives the same sequences, and a
    slow machine runs fewer of them rather than overrunning. A round that finds a failure
    shrinks it (for at most ``shrink_seconds``)."""
    started = time.perf_counter()
    run = Run(dsn, migration_dirs, flows)
    try:
        config = quiet_settings(ROUND, stateful_step_count=steps)
        with exclusive(), shrink_budget(shrink_seconds):
            for number in range(max(1, -(-examples // ROUND))):
                if (
                    number
                    and budget_seconds is not None
                    and time.perf_counter() - started > budget_seconds
                ):
                    run.report.out_of_time = True
                    break
                cls = seed(seed_value * 1_000_003 + number)(machine(run))
                run_state_machine_as_test(cls, settings=config)
                run.report.rounds += 1
    finally:
        run.close()
    run.report.seconds = time.perf_counter() - started
    return run.report


__all__ = [
    "DEFAULT_EXAMPLES",
    "DEFAULT_STEPS",
    "WORLD",
    "ModelFailure",
    "Report",
    "Run",
    "as_scenario",
    "describe",
    "dump",
    "lifecycle_step",
    "run_lifecycle",
]
