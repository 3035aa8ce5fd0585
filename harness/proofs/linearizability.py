"""Linearizability of concurrent histories against the model (``model.linearizable``).

A history is what concurrent clients saw: each operation's invocation and completion
time and its answer. It is linearizable when some sequential order of the operations
that respects real time (an operation that completed before another was invoked comes
first) gives, applied to :mod:`harness.money.model` one after another, exactly the
answers the clients got and, at the end, exactly the state the database holds.

:func:`check_history` decides it with the search of Wing & Gong as improved by Lowe and
used by Knossos and Porcupine: the history's call and return events in time order form
a linked list; the search repeatedly tries to linearize a pending call (one whose call
precedes the first remaining return), applying the model and keeping it only when the
model's answer is the one observed and the pair (set of operations linearized, model
state) is new (memoisation: the same set reaching the same state needs exploring once);
at a return whose call could not be linearized it backtracks. A bound on the number of
search steps makes it always terminate: a search that hits it is *inconclusive*, never
a pass.

:func:`run_histories` makes the histories: a small world (a hot workspace with little
credit, a second workspace, leads with ``max_sales`` 1, 2 and none, purchases left
pending by stepwise crashes), then 3-6 clients released together by a barrier
(:func:`harness.testing.release_together`), 8-16 operations among them: purchases through
the flows under test, top-ups, refunds and ``reconcile_purchase`` of the pending ones.
Each operation runs through the scenario :class:`~harness.drivers.scenarios.runner.Session`
and its answer is recorded in the model's terms.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.drivers.scenarios.format import (
    UNEXPECTED,
    Expect,
    LeadSpec,
    Scenario,
    Step,
    WorkspaceSpec,
)
from harness.drivers.scenarios.runner import show_answer
from harness.money import model
from harness.proofs.lifecycle import Run, describe, lifecycle_step
from harness.testing import max_overlap, release_together

S = TypeVar("S", bound=Hashable)
DEFAULT_LIMIT = 200_000  # search steps before a history is called inconclusive


@dataclass(frozen=True)
class Operation:
    """One operation as a client saw it: ``input`` what it asked (for the model),
    ``output`` what it was answered, ``call``/``ret`` when (monotonic seconds)."""

    id: int
    client: int
    call: float
    ret: float
    input: Any
    output: Any
    text: str = ""


@dataclass
class Verdict(Generic[S]):
    """``linearizable``: True, False, or None when the search hit its bound."""

    linearizable: bool | None
    order: list[int] = field(default_factory=list)  # a linearization, when there is one
    longest: list[int] = field(default_factory=list)  # the longest prefix found otherwise
    explored: int = 0
    # At the deepest point: each operation that could come next, and why it cannot.
    blocked: list[tuple[int, Any]] = field(default_factory=list)
    final_mismatch: bool = False  # every answer fitted, but no order ended in the final state


class _Node:
    __slots__ = ("id", "match", "next", "prev")

    def __init__(self, op_id: int, match: _Node | None) -> None:
        self.id = op_id
        self.match = match  # a call's return node; None for a return
        self.next: _Node | None = None
        self.prev: _Node | None = None


def _events(ops: Sequence[Operation]) -> _Node:
    """The call and return events in time order (calls before returns at equal times),
    as a doubly linked list behind a head sentinel."""
    events = sorted(
        [(op.call, 0, op.id) for op in ops] + [(op.ret, 1, op.id) for op in ops],
    )
    head = _Node(-1, None)
    returns: dict[int, _Node] = {}
    nodes: list[_Node] = []
    for _, kind, op_id in reversed(events):  # returns exist before their calls link them
        if kind == 1:
            returns[op_id] = _Node(op_id, None)
            nodes.append(returns[op_id])
        else:
            nodes.append(_Node(op_id, returns[op_id]))
    nodes.reverse()
    prev = head
    for node in nodes:
        prev.next, node.prev = node, prev
        prev = node
    return head


def _lift(call: _Node) -> None:
    """Take a call and its return out of the list (the operation is linearized)."""
    for node in (call, call.match):
        assert node is not None and node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(call: _Node) -> None:
    for node in (call.match, call):
        assert node is not None and node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check_history(
    ops: Sequence[Operation],
    init: S,
    step: Callable[[S, Any], tuple[S, Any]],
    *,
    final: Callable[[S], bool] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Verdict[S]:
    """Is there an order of ``ops``, consistent with real time, in which ``step``
    (the model: state, input -> new state, answer) answers each exactly its ``output``
    and, when ``final`` is given, ends in a state ``final`` accepts?"""
    by_id = {op.id: op for op in ops}
    head = _events(ops)
    state = init
    linearized = 0
    seen: set[tuple[int, S]] = set()
    stack: list[tuple[_Node, S]] = []
    verdict: Verdict[S] = Verdict(None)
    entry = head.next
    while True:
        verdict.explored += 1
        if verdict.explored > limit:
            return verdict
        if head.next is None:  # everything linearized: does the state end as observed?
            if final is None or final(state):
                verdict.linearizable = True
                verdict.order = [node.id for node, _ in stack]
                return verdict
            verdict.final_mismatch = True
            entry = None  # a dead end: backtrack
        if entry is not None and entry.match is not None:  # a call: try it next
            op = by_id[entry.id]
            new_state, answer = step(state, op.input)
            if answer == op.output:
                key = (linearized | (1 << entry.id), new_state)
                if key not in seen:
                    seen.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, key[0]
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return whose call is not linearized (or the end of a dead end): backtrack.
        if len(stack) > len(verdict.longest) or not verdict.longest:
            verdict.longest = [node.id for node, _ in stack]
            verdict.blocked = _blocked(head, state, step, by_id)
        if not stack:
            verdict.linearizable = False
            return verdict
        call, state = stack.pop()
        linearized &= ~(1 << call.id)
        _unlift(call)
        entry = call.next


def _blocked(
    head: _Node, state: Any, step: Callable[[Any, Any], tuple[Any, Any]], by_id: dict[int, Any]
) -> list[tuple[int, Any]]:
    """The operations that could be linearized next (calls before the first remaining
    return) and the answer the model would give each."""
    out = []
    node = head.next
    while node is not None and node.match is not None:
        out.append((node.id, step(state, by_id[node.id].input)[1]))
        node = node.next
    return out


# -- histories of the marketplace -------------------------------------------------------------

PRICE = Decimal("1.00")
WORLD = Scenario(
    path=Path("model-linearizable.toml"),
    name="model-linearizable",
    description="",
    flow=None,
    workspaces=(
        WorkspaceSpec("h", Decimal("4.00"), 3),
        WorkspaceSpec("w", Decimal("2.00"), 2),
    ),
    partners=(),
    leads=(
        LeadSpec("x", 2, PRICE, None, 1, 0),
        LeadSpec("y", 2, PRICE, None, 2, 0),
        LeadSpec("z", 8, PRICE, None, None, 0),
    ),
    steps=(Step(0, "run_worker"),),
    expect=Expect(),
)
# Purchases left pending before the history, for its refunds and reconciles: s1 with
# nothing after its debit, s2 with its leads counted sold, s3 with its items only.
SETUP = (
    ("s1", "h", ("z-6",), "debit"),
    ("s2", "w", ("z-7",), "mark_sold"),
    ("s3", "h", ("y-1",), "items"),
)


@dataclass(frozen=True)
class Call:
    """An operation's input: a scenario step (what the session runs) and the model
    function with its arguments (what the search applies)."""

    step: Step
    op: Callable[..., tuple[model.State, model.Answer]]
    args: tuple[Any, ...]

    def apply(self, state: model.State) -> tuple[model.State, model.Answer]:
        return self.op(state, *self.args)


@dataclass
class HistoryFailure:
    """A history no sequential order explains."""

    ops: list[Operation]
    verdict: Verdict[Any]
    setup: list[Step]
    flows: tuple[str, ...]
    start: model.State
    observed: model.Observation

    def describe(self, limit: int = 16) -> str:
        start = min(op.call for op in self.ops)
        lines = []
        for op in sorted(self.ops, key=lambda o: o.call)[:limit]:
            lines.append(
                f"  op{op.id} client {op.client} [{1000 * (op.call - start):.1f}-"
                f"{1000 * (op.ret - start):.1f} ms] {op.text} -> {show_answer(op.output)}"
            )
        v = self.verdict
        unexplainable = [op for op in self.ops if op.output == model.Refused(UNEXPECTED)]
        if unexplainable:
            why = "; ".join(f"op{op.id} raised instead of answering" for op in unexplainable)
        elif v.final_mismatch and not v.blocked:
            state = self.start
            for i in v.longest:
                state, _ = self.op(i).input.apply(state)
            differences = model.observe(state).differences(self.observed, limit=3)
            why = (
                "every answer fits some order, but none ends in the database's final state "
                f"(after {', '.join(f'op{i}' for i in v.longest)}: {'; '.join(differences)})"
            )
        else:
            prefix = ", ".join(f"op{i}" for i in v.longest) or "nothing"
            blocked = "; ".join(
                f"op{i} answered {show_answer(self.op(i).output)}, the model says "
                f"{show_answer(answer)}"
                for i, answer in v.blocked
            )
            why = f"after {prefix} no operation can come next: {blocked}"
        return "not linearizable: " + why + "\n" + "\n".join(lines)

    def op(self, op_id: int) -> Operation:
        return next(op for op in self.ops if op.id == op_id)


@dataclass
class HistoriesReport:
    histories: int = 0
    operations: int = 0
    clients: list[int] = field(default_factory=list)
    peak_overlap: int = 0
    explored: int = 0
    seconds: float = 0.0
    failure: HistoryFailure | None = None
    inconclusive: str | None = None


def generate(rng: random.Random, flows: tuple[str, ...]) -> list[list[Call]]:
    """One history's calls, per client: 3-6 clients, 8-16 operations, mostly purchases
    (most of them from the hot workspace, whose credit runs out), some top-ups, and
    refunds and reconciles of the pending purchases. In half the histories the first
    calls of two or three clients settle the same pending purchase, released together."""
    clients = rng.randint(3, 6)
    total = rng.randint(max(8, clients), 16)
    out: list[list[Call]] = [[] for _ in range(clients)]
    if rng.random() < 0.5:
        target = rng.choice(SETUP)[0]
        for client in range(rng.randint(2, 3)):
            out[client].append(_settle(rng.choice(("refund", "reconcile")), target))
    for n in range(sum(len(c) for c in out), total):
        kind = rng.choices(("purchase", "topup", "refund", "reconcile"), (12, 2, 2, 2))[0]
        client = n % clients
        if kind == "purchase":
            out[client].append(_purchase(rng, flows))
        elif kind == "topup":
            ws = rng.choice(("h", "w"))
            amount = rng.choice((Decimal("1.00"), Decimal("2.00")))
            step = Step(0, "topup", workspaces=(ws,), amount=amount)
            out[client].append(Call(step, model.top_up, (ws, amount)))
        else:
            out[client].append(_settle(kind, rng.choice(SETUP)[0]))
    return [c for c in out if c]


def _purchase(rng: random.Random, flows: tuple[str, ...]) -> Call:
    ws = rng.choices(("h", "w"), (3, 1))[0]
    user = rng.choice(WORLD.member_names[ws])
    leads = WORLD.lead_names[:-2]  # z-6, z-7 belong to the set-up purchases
    chosen = tuple(sorted(rng.sample(leads, rng.choice((1, 1, 2)))))
    step = Step(0, "purchase", workspaces=(ws,), user=user, leads=(chosen,), flow=rng.choice(flows))
    return Call(step, model.purchase, (model.Request(ws, user, chosen),))


def _settle(kind: str, target: str) -> Call:
    if kind == "refund":
        return Call(Step(0, "refund", purchase=target), model.refund, (target,))
    step = Step(0, "reconcile_purchase", purchase=target)
    return Call(step, model.reconcile_purchase, (target,))


def run_histories(
    dsn: str,
    *,
    rng: random.Random,
    flows: tuple[str, ...],
    histories: int = 6,
    migration_dirs: list[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    budget_seconds: float | None = None,
) -> HistoriesReport:
    """Run up to ``histories`` concurrent histories (fewer if ``budget_seconds`` runs
    out) and judge each; stop at the first that is not linearizable (or inconclusive)."""
    started = time.perf_counter()
    report = HistoriesReport()
    run = Run(dsn, migration_dirs, flows, world=WORLD, width=7)
    try:
        for n in range(histories):
            if budget_seconds is not None and n and time.perf_counter() - started > budget_seconds:
                break
            calls = generate(rng, flows)
            ops, setup, state = _run_one(run, calls)
            report.histories += 1
            report.operations += len(ops)
            report.clients.append(len(calls))
            report.peak_overlap = max(
                report.peak_overlap, max_overlap([(o.call, o.ret) for o in ops])
            )
            observed = run.session.observe(run.conn)
            verdict = check_history(ops, state, _apply, final=_ends_in(observed), limit=limit)
            report.explored += verdict.explored
            if verdict.linearizable is None:
                report.inconclusive = (
                    f"history {n + 1}: the search stopped after {verdict.explored:,} steps "
                    f"(bound {limit:,}) without deciding"
                )
                break
            if not verdict.linearizable:
                report.failure = HistoryFailure(ops, verdict, setup, flows, state, observed)
                break
    finally:
        run.close()
    report.seconds = time.perf_counter() - started
    return report


def _apply(state: model.State, call: Call) -> tuple[model.State, model.Answer]:
    return call.apply(state)


def _ends_in(observed: model.Observation) -> Callable[[model.State], bool]:
    return lambda state: model.observe(state) == observed


def _run_one(run: Run, calls: list[list[Call]]) -> tuple[list[Operation], list[Step], model.State]:
    """Reset the world, make the set-up purchases (checked against the model), then
    release the clients together; every operation with its times and answer."""
    run.reset()
    state = model.initial(run.model_world)
    setup: list[Step] = []
    for label, ws, leads, after in SETUP:
        user = WORLD.member_names[ws][0]
        step = Step(
            len(setup),
            "crash_purchase",
            workspaces=(ws,),
            user=user,
            leads=(leads,),
            after=after,
            label=label,
        )
        state, expected = model.crash_purchase(state, model.Request(ws, user, leads), after, label)
        got = run.session.run(step).answer
        if got != expected:
            raise AssertionError(
                f"set-up {describe(step)}: expected {show_answer(expected)}, got {show_answer(got)}"
            )
        setup.append(lifecycle_step(step, expected, label))
    ids = iter(range(1000))
    numbered = [[(next(ids), call) for call in client] for client in calls]
    ops: list[Operation] = []

    def client(i: int) -> None:
        for op_id, call in numbered[i]:
            label = f"op{op_id}"
            step = call.step
            args = call.args
            if step.action == "purchase":
                step = replace(step, label=label)
                args = (*args, label)
            start = time.monotonic()
            result = run.session.run(step)
            end = time.monotonic()
            ops.append(
                Operation(
                    op_id,
                    i,
                    start,
                    end,
                    Call(step, call.op, args),
                    result.answer,
                    describe(step),
                )
            )

    outcomes, _ = release_together(len(numbered), client)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return sorted(ops, key=lambda o: o.id), setup, state


def failure_scenario(failure: HistoryFailure) -> Scenario:
    """The failing history as a scenario: the set-up, then its purchases as one step
    whose purchases all run at once (the top-ups, refunds and reconciles are left out:
    the format runs only purchases concurrently). It must end with every invariant
    holding and no error but documented refusals."""
    purchases = [op.input.step for op in failure.ops if op.input.step.action == "purchase"]
    flow = purchases[0].flow if purchases else failure.flows[0]
    steps: list[Step] = list(failure.setup)
    if purchases:
        steps.append(
            Step(
                len(steps),
                "purchase",
                workspaces=tuple(p.workspaces[0] for p in purchases),
                leads=tuple(p.leads[0] for p in purchases if p.leads),
                repeat=len(purchases),
                concurrency=len(purchases),
                flow=flow,
            )
        )
    steps.append(Step(len(steps), "reconcile"))
    return replace(
        WORLD,
        path=Path("model-linearizable-failure.toml"),
        name="model-linearizable-failure",
        description=(
            "model.linearizable found a history no sequential order explains; its purchases "
            "replayed at once"
        ),
        flow=flow,
        steps=tuple(steps),
        expect=Expect(invariants="hold"),
    )


__all__ = [
    "DEFAULT_LIMIT",
    "HistoriesReport",
    "HistoryFailure",
    "Operation",
    "Verdict",
    "check_history",
    "failure_scenario",
    "generate",
    "run_histories",
]
