"""The marketplace's money rules as a small pure-Python model: the specification that
``model.lifecycle`` and ``model.linearizable`` (``harness verify``) hold the database to.

Read this file to learn what the marketplace must do. A :class:`State` holds everything
that matters about money: each workspace's credits account (``balance``, ``total_used``),
the ledger, each lead's ``sold_count``, the reservations, the purchases with their status,
the idempotency keys and the queued emails. Every operation is a pure function from a
state to ``(new state, answer)``: what the database must end up holding and what the
caller must be told. Nothing here touches a database; the checks run the same operation
against a real one and compare. Names stand in for ids: workspaces, users and leads by the
names of the :class:`World`, purchases by a label given when they are made.

The rules, in brief (each function's docstring has the detail):

* A purchase takes exactly its price from the buyer's balance and adds it to
  ``total_used``, writes one ledger debit, reserves each lead for the workspace, records
  an item per lead, counts each lead sold once, completes, and queues one confirmation
  email to the buyer: all of it or none of it, whichever project flow runs it.
* It is refused, changing nothing but its idempotency key, when the buyer is not a member
  (``not_authorized``), the workspace has no credits account (``no_credits_account``),
  already holds one of the leads (``duplicate_purchase``), a lead is held as often as its
  ``max_sales`` allows (``leads_no_longer_available``), or the balance is below the price
  (``insufficient_credits``), checked in that order.
* An idempotency key belongs to one request (user and set of leads) in one workspace: the
  same request again replays the stored answer, another request under the key is an
  ``idempotency_mismatch``, a request while the key's attempt is unfinished is
  ``purchase_in_progress``, and a key whose attempt was refused or refunded may run again.
* The stepwise flow may stop after any step (a crash). A purchase left pending completes
  only once its items are recorded and its leads counted sold; it is refunded otherwise.
  A refund gives back exactly what the purchase took: the credits (ledger refund entry,
  ``total_used`` down), its reservations, and the sales it counted, never more.
* A refunded purchase keeps its items as history, but they are not deliverable: only a
  completed purchase's leads are ever handed out, and only to its buyer.
* Completed, refunded: final. A lifecycle call on a purchase in a final state answers that
  state and changes nothing.
* Reconcile settles every pending purchase by those rules, queues the confirmation email
  a completed purchase lacks, and settles the idempotency keys left unfinished.
* Rolling back the latest migration and re-applying it loses nothing these rules need.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar

from harness.money.repository import KeyStatus, PurchaseStatus

K = TypeVar("K")
V = TypeVar("V")

ZERO = Decimal("0.00")
CRASH_POINTS = ("debit", "items", "mark_sold", "complete")
CONFIRMATION = "purchase_confirmation"
CREDIT = "credit_purchase"


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping: model states are values, so that a search can
    remember the states it has seen."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def set(self, key: K, value: V) -> FrozenMap[K, V]:
        """A copy with ``key`` bound to ``value``."""
        return FrozenMap({**self._data, key: value})


def _bag_add(bag: tuple[Any, ...], *items: Any) -> tuple[Any, ...]:
    """A multiset kept as a sorted tuple, so that equal contents compare (and hash) equal
    whatever order they were added in."""
    return tuple(sorted((*bag, *items), key=repr))


# -- the world: what a scenario declares and never changes -----------------------------------


@dataclass(frozen=True)
class Lead:
    """A lead for sale at ``price``, at most ``max_sales`` times (None: no limit)."""

    name: str
    price: Decimal
    max_sales: int | None = None
    for_sale: bool = True


@dataclass(frozen=True)
class Workspace:
    """A workspace, its members (the first is its owner) and its opening balance: a
    top-up made before anything else, or None for a workspace with no credits account
    (``0.00`` opens an empty account)."""

    name: str
    members: tuple[str, ...]
    opening: Decimal | None = None


@dataclass(frozen=True)
class World:
    """The workspaces and leads; users outside every workspace are ``outsiders``."""

    workspaces: tuple[Workspace, ...]
    leads: tuple[Lead, ...]
    outsiders: tuple[str, ...] = ()

    def workspace(self, name: str) -> Workspace:
        return next(w for w in self.workspaces if w.name == name)

    def lead(self, name: str) -> Lead:
        return next(x for x in self.leads if x.name == name)

    def price(self, leads: tuple[str, ...]) -> Decimal:
        return sum((self.lead(x).price for x in leads), ZERO)


# -- the state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A workspace's credits account."""

    balance: Decimal
    total_used: Decimal = ZERO


@dataclass(frozen=True, order=True)
class Entry:
    """A ledger entry: ``topup`` and ``refund`` positive, ``purchase`` negative."""

    workspace: str
    kind: str
    amount: Decimal
    purchase: str = ""


@dataclass(frozen=True)
class Purchase:
    """A purchase of ``leads`` (sorted) by ``user`` for ``workspace`` at ``price``.

    ``items``: its items are recorded (one per lead, at the lead's price). ``marked``: its
    leads have been counted sold for it. The flows do both before completing; a crash of
    the stepwise flow may leave a pending purchase with neither, or only items."""

    label: str
    workspace: str
    user: str
    leads: tuple[str, ...]
    price: Decimal
    status: PurchaseStatus = PurchaseStatus.PENDING
    items: bool = False
    marked: bool = False


@dataclass(frozen=True)
class Bought:
    """A completed purchase as its buyer is told: the balance right after its debit, its
    price and the leads delivered (sorted); ``replayed`` when an idempotency key answered
    with the stored response of an earlier request."""

    purchase: str
    new_balance: Decimal
    total_price: Decimal
    leads: tuple[str, ...]
    replayed: bool = False

    def replay(self) -> Bought:
        return replace(self, replayed=True)


@dataclass(frozen=True)
class Key:
    """An idempotency key: the request it belongs to (user, set of leads), its state, the
    purchase its attempt made, the balance right after that purchase's debit, and the
    response a completed key replays."""

    user: str
    leads: frozenset[str]
    status: KeyStatus = KeyStatus.PROCESSING
    purchase: str | None = None
    new_balance: Decimal | None = None
    response: Bought | None = None


@dataclass(frozen=True, order=True)
class Email:
    """An email job: a purchase confirmation (``purchase`` set) or a credit purchase."""

    kind: str
    recipient: str
    workspace: str
    purchase: str = ""
    status: str = "queued"


@dataclass(frozen=True)
class State:
    """Everything about money the database holds, as values."""

    world: World
    accounts: FrozenMap[str, Account] = field(default_factory=FrozenMap)
    ledger: tuple[Entry, ...] = ()
    sold: FrozenMap[str, int] = field(default_factory=FrozenMap)
    # (lead, workspace, purchase label)
    reservations: frozenset[tuple[str, str, str]] = frozenset()
    purchases: FrozenMap[str, Purchase] = field(default_factory=FrozenMap)
    keys: FrozenMap[tuple[str, str], Key] = field(default_factory=FrozenMap)
    emails: tuple[Email, ...] = ()

    def held(self, lead: str) -> int:
        """How many workspaces hold ``lead`` (its reservations)."""
        return sum(1 for r in self.reservations if r[0] == lead)

    def owns(self, workspace: str, lead: str) -> bool:
        return any(r[0] == lead and r[1] == workspace for r in self.reservations)

    def purchase(self, label: str) -> Purchase | None:
        return self.purchases.get(label)

    def next_label(self) -> str:
        return f"p{len(self.purchases) + 1}"

    def emailed(self, label: str) -> bool:
        return any(e.kind == CONFIRMATION and e.purchase == label for e in self.emails)


def initial(world: World) -> State:
    """The world before anything happens: the opening balances as top-ups (no email is
    queued for them), every lead unsold."""
    state = State(world, sold=FrozenMap({lead.name: 0 for lead in world.leads}))
    for ws in world.workspaces:
        if ws.opening is None:
            continue
        state = replace(state, accounts=state.accounts.set(ws.name, Account(ws.opening)))
        if ws.opening > 0:
            state = replace(
                state, ledger=_bag_add(state.ledger, Entry(ws.name, "topup", ws.opening))
            )
    return state


# -- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """A refusal, by its stable code (``harness.errors``)."""

    code: str


@dataclass(frozen=True)
class Crashed:
    """The stepwise flow stopped after a step; the purchase it left (an earlier one's
    when its key replayed)."""

    purchase: str


@dataclass(frozen=True)
class Reconciled:
    """What one reconcile run settled."""

    completed: frozenset[str] = frozenset()
    refunded: frozenset[str] = frozenset()
    emails_queued: frozenset[str] = frozenset()
    keys_completed: int = 0
    keys_failed: int = 0


@dataclass(frozen=True)
class Delivered:
    """A purchase's leads as handed out: to a workspace asking for them
    (``get_purchased_leads``) and in a response (``purchase_response_leads``)."""

    to_asker: tuple[str, ...]
    in_response: tuple[str, ...]


Answer = Bought | Refused | Crashed | Reconciled | Delivered | Decimal | int | str | None


@dataclass(frozen=True)
class Request:
    """A purchase request: these leads, for this workspace, as this user, maybe under an
    idempotency key."""

    workspace: str
    user: str
    leads: tuple[str, ...]
    key: str | None = None


# -- operations ------------------------------------------------------------------------------


def top_up(state: State, workspace: str, amount: Decimal) -> tuple[State, Answer]:
    """Add ``amount`` (a positive whole number of cents) to the workspace's credits,
    opening its account if it has none; one ledger top-up; a credit purchase email to
    the workspace's owner. Answers the new balance."""
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return state, Refused("invalid_amount")
    account = state.accounts.get(workspace, Account(ZERO))
    balance = account.balance + amount
    state = replace(
        state,
        accounts=state.accounts.set(workspace, replace(account, balance=balance)),
        ledger=_bag_add(state.ledger, Entry(workspace, "topup", amount)),
    )
    members = state.world.workspace(workspace).members
    if members:
        state = replace(state, emails=_bag_add(state.emails, Email(CREDIT, members[0], workspace)))
    return state, balance


def _claim(state: State, req: Request) -> tuple[State, Answer | None]:
    """The idempotency key's verdict: None to go ahead (the key is now this attempt's),
    else the answer to give at once."""
    if req.key is None:
        return state, None
    slot = (req.workspace, req.key)
    key = state.keys.get(slot)
    if key is None or (key.status is KeyStatus.FAILED and _same_request(key, req)):
        return replace(state, keys=state.keys.set(slot, Key(req.user, frozenset(req.leads)))), None
    if not _same_request(key, req):
        return state, Refused("idempotency_mismatch")
    if key.status is KeyStatus.COMPLETED and key.response is not None:
        return state, key.response.replay()
    return state, Refused("purchase_in_progress")


def _same_request(key: Key, req: Request) -> bool:
    return key.user == req.user and key.leads == frozenset(req.leads)


def _set_key(state: State, req: Request, **changes: Any) -> State:
    if req.key is None:
        return state
    slot = (req.workspace, req.key)
    return replace(state, keys=state.keys.set(slot, replace(state.keys[slot], **changes)))


def _refusal(state: State, req: Request) -> str | None:
    """Why the purchase cannot be made now, checked in this order; None when it can."""
    account = state.accounts.get(req.workspace)
    if account is None:
        return "no_credits_account"
    if any(state.owns(req.workspace, lead) for lead in req.leads):
        return "duplicate_purchase"
    for name in req.leads:
        lead = state.world.lead(name)
        if not lead.for_sale or (lead.max_sales is not None and state.held(name) >= lead.max_sales):
            return "leads_no_longer_available"
    if account.balance < state.world.price(req.leads):
        return "insufficient_credits"
    return None


def _debit(state: State, req: Request, label: str) -> State:
    """The first step of every purchase: the price taken, the purchase recorded as
    pending, each lead reserved for the workspace."""
    price = state.world.price(req.leads)
    account = state.accounts[req.workspace]
    leads = tuple(sorted(req.leads))
    purchase = Purchase(label, req.workspace, req.user, leads, price)
    return replace(
        state,
        accounts=state.accounts.set(
            req.workspace,
            Account(account.balance - price, account.total_used + price),
        ),
        ledger=_bag_add(state.ledger, Entry(req.workspace, "purchase", -price, label)),
        purchases=state.purchases.set(label, purchase),
        reservations=state.reservations | {(lead, req.workspace, label) for lead in leads},
    )


def _update(state: State, label: str, **changes: Any) -> State:
    return replace(
        state, purchases=state.purchases.set(label, replace(state.purchases[label], **changes))
    )


def _count_sold(state: State, label: str, delta: int) -> State:
    sold = state.sold
    for lead in state.purchases[label].leads:
        sold = sold.set(lead, sold[lead] + delta)
    return _update(replace(state, sold=sold), label, marked=delta > 0)


def _confirm(state: State, label: str) -> State:
    """Queue the purchase's confirmation email to its buyer (once per purchase)."""
    if state.emailed(label):
        return state
    p = state.purchases[label]
    return replace(
        state, emails=_bag_add(state.emails, Email(CONFIRMATION, p.user, p.workspace, label))
    )


def deliverable(state: State, label: str) -> tuple[str, ...]:
    """The leads a purchase hands out: a completed purchase's, none otherwise (a
    refunded purchase keeps its items as history, but they are not deliverable)."""
    p = state.purchases.get(label)
    if p is None or p.status is not PurchaseStatus.COMPLETED or not p.items:
        return ()
    return p.leads


def _balance_after_debit(state: State, workspace: str) -> Decimal:
    return state.accounts[workspace].balance


def purchase(state: State, req: Request, label: str | None = None) -> tuple[State, Answer]:
    """A purchase through a project flow (atomic or stepwise): all of it, or a refusal.

    ``label`` names the purchase if one is made (default: the next ``p<n>``). Refusals
    before the key (``not_authorized``) leave the key alone; refusals after it mark the
    key failed, so that the same request may run again."""
    label = label or state.next_label()
    if req.user not in state.world.workspace(req.workspace).members:
        return state, Refused("not_authorized")
    state, early = _claim(state, req)
    if early is not None:
        return state, early
    code = _refusal(state, req)
    if code is not None:
        return _set_key(state, req, status=KeyStatus.FAILED), Refused(code)
    state = _debit(state, req, label)
    new_balance = _balance_after_debit(state, req.workspace)
    state = _update(state, label, items=True)
    state = _count_sold(state, label, +1)
    state = _update(state, label, status=PurchaseStatus.COMPLETED)
    state = _confirm(state, label)
    answer = Bought(label, new_balance, state.purchases[label].price, deliverable(state, label))
    state = _set_key(
        state,
        req,
        status=KeyStatus.COMPLETED,
        purchase=label,
        new_balance=new_balance,
        response=answer,
    )
    return state, answer


def crash_purchase(
    state: State, req: Request, after: str, label: str | None = None
) -> tuple[State, Answer]:
    """The stepwise flow stopped after ``after`` (debit, items, mark_sold, complete) as
    if its process died: the steps before it done, nothing after. Its key stays
    unfinished (``purchase_in_progress`` to a retry) until reconcile settles it; a
    purchase completed this way has no confirmation email until reconcile queues it.
    Refusals and replays answer as :func:`purchase` does (a replay names the earlier
    purchase)."""
    if after not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {after!r}")
    label = label or state.next_label()
    if req.user not in state.world.workspace(req.workspace).members:
        return state, Refused("not_authorized")
    state, early = _claim(state, req)
    if isinstance(early, Bought):
        return state, Crashed(early.purchase)
    if early is not None:
        return state, early
    code = _refusal(state, req)
    if code is not None:
        return _set_key(state, req, status=KeyStatus.FAILED), Refused(code)
    state = _debit(state, req, label)
    state = _set_key(
        state, req, purchase=label, new_balance=_balance_after_debit(state, req.workspace)
    )
    for step in CRASH_POINTS[1 : CRASH_POINTS.index(after) + 1]:
        if step == "items":
            state = _update(state, label, items=True)
        elif step == "mark_sold":
            state = _count_sold(state, label, +1)
        else:
            state = _update(state, label, status=PurchaseStatus.COMPLETED)
    return state, Crashed(label)


def mark_sold(state: State, label: str) -> tuple[State, Answer]:
    """The stepwise flow's third step on its own: count a pending purchase's leads sold,
    once, after its items are recorded. Answers ``marked`` (every lead counted), or
    ``not_pending`` for a purchase already completed or refunded (nothing changes).

    Precondition (the only way the flow reaches this step): a pending purchase has its
    items and has not been counted yet."""
    p = state.purchases[label]
    if p.status is not PurchaseStatus.PENDING:
        return state, "not_pending"
    if p.marked or not p.items:
        raise ValueError(f"mark_sold precondition: {label} is marked or has no items")
    return _count_sold(state, label, +1), "marked"


def complete(state: State, label: str) -> tuple[State, Answer]:
    """``complete_purchase``: a pending purchase whose items are recorded and whose
    leads are counted becomes completed; any other purchase is left as it is. Answers
    the status afterwards (``missing`` for an unknown purchase). Queues no email: a
    purchase completed this way gets its confirmation from reconcile."""
    p = state.purchases.get(label)
    if p is None:
        return state, "missing"
    if p.status is PurchaseStatus.PENDING and p.items and p.marked:
        return _update(state, label, status=PurchaseStatus.COMPLETED), "completed"
    return state, p.status.value


def refund(state: State, label: str) -> tuple[State, Answer]:
    """``refund_purchase``: a pending purchase becomes refunded; it gives back exactly
    what it took: its credits (a ledger refund, ``total_used`` down by as much), its
    reservations, and one sale of each of its leads if it had counted them. Its items
    stay, as history, and are no longer deliverable. Completed and refunded purchases
    are left as they are. Answers the status afterwards (``missing`` when unknown)."""
    p = state.purchases.get(label)
    if p is None:
        return state, "missing"
    if p.status is not PurchaseStatus.PENDING:
        return state, p.status.value
    account = state.accounts[p.workspace]
    state = replace(
        state,
        accounts=state.accounts.set(
            p.workspace, Account(account.balance + p.price, account.total_used - p.price)
        ),
        ledger=_bag_add(state.ledger, Entry(p.workspace, "refund", p.price, label)),
        reservations=frozenset(r for r in state.reservations if r[2] != label),
    )
    if p.marked:
        state = _count_sold(state, label, -1)
    return _update(state, label, status=PurchaseStatus.REFUNDED), "refunded"


def reconcile_purchase(state: State, label: str) -> tuple[State, Answer]:
    """``reconcile_purchase``: a pending purchase that reached the last step before
    completion (items recorded, leads counted) is completed and its confirmation email
    queued; any other pending purchase is refunded. Answers ``completed``, ``refunded``,
    ``unchanged`` (not pending) or ``missing``."""
    p = state.purchases.get(label)
    if p is None:
        return state, "missing"
    if p.status is not PurchaseStatus.PENDING:
        return state, "unchanged"
    if p.items and p.marked:
        state = _update(state, label, status=PurchaseStatus.COMPLETED)
        return _confirm(state, label), "completed"
    state, _ = refund(state, label)
    return state, "refunded"


def reconcile(state: State) -> tuple[State, Answer]:
    """``harness reconcile`` (everything older than now): every pending purchase settled
    by :func:`reconcile_purchase`; every completed purchase without a confirmation email
    gets one; every unfinished key settled: completed with the response its request would
    have stored when its purchase completed, failed (so it may run again) when its
    purchase was refunded or never made."""
    completed: set[str] = set()
    refunded: set[str] = set()
    for label, p in sorted(state.purchases.items()):
        if p.status is PurchaseStatus.PENDING:
            state, outcome = reconcile_purchase(state, label)
            (completed if outcome == "completed" else refunded).add(label)
    emails: set[str] = set()
    for label, p in sorted(state.purchases.items()):
        if p.status is PurchaseStatus.COMPLETED and not state.emailed(label):
            state = _confirm(state, label)
            emails.add(label)
    keys_completed = keys_failed = 0
    keys = state.keys
    for slot, key in sorted(state.keys.items()):
        if key.status is not KeyStatus.PROCESSING:
            continue
        made = state.purchases.get(key.purchase) if key.purchase else None
        if made is not None and made.status is PurchaseStatus.COMPLETED:
            response = Bought(
                made.label, key.new_balance or ZERO, made.price, deliverable(state, made.label)
            )
            keys = keys.set(slot, replace(key, status=KeyStatus.COMPLETED, response=response))
            keys_completed += 1
        elif made is None or made.status is PurchaseStatus.REFUNDED:
            keys = keys.set(slot, replace(key, status=KeyStatus.FAILED))
            keys_failed += 1
    state = replace(state, keys=keys)
    answer = Reconciled(
        frozenset(completed), frozenset(refunded), frozenset(emails), keys_completed, keys_failed
    )
    return state, answer


def run_worker(state: State) -> tuple[State, Answer]:
    """The email worker against a mail server that accepts everything: every queued job
    is sent. Answers how many."""
    sent = tuple(replace(e, status="sent") if e.status == "queued" else e for e in state.emails)
    count = sum(1 for e in state.emails if e.status == "queued")
    return replace(state, emails=_bag_add((), *sent)), count


def leads(state: State, label: str, asker: str) -> tuple[State, Answer]:
    """What a purchase hands out: to the workspace ``asker`` (only its buyer gets
    anything) and in a purchase response. Reads only."""
    p = state.purchases[label]
    out = deliverable(state, label)
    return state, Delivered(out if asker == p.workspace else (), out)


def reapply(state: State) -> tuple[State, Answer]:
    """Roll back the latest migration and apply it again: nothing the rules need is
    lost, so the state is unchanged."""
    return state, "reapplied"


# -- what is compared --------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """The state as the database is compared with it: balances and ``total_used`` (None:
    no account), ledger sums, sold counts, reservations, purchase statuses, what each
    purchase delivers, email jobs, and idempotency keys (status, purchase)."""

    accounts: tuple[tuple[str, Decimal | None, Decimal | None], ...]
    ledger: tuple[tuple[str, str, Decimal], ...]
    sold: tuple[tuple[str, int], ...]
    reservations: tuple[tuple[str, str, str], ...]
    purchases: tuple[tuple[str, str, str, str, tuple[str, ...]], ...]
    emails: tuple[tuple[str, str, str, str, str], ...]
    keys: tuple[tuple[str, str, str, str], ...]

    def differences(self, other: Observation, limit: int = 6) -> list[str]:
        """One line per differing part: ``expected ... got ...`` (self is expected)."""
        out = []
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                missing = [x for x in mine if x not in theirs][:3]
                extra = [x for x in theirs if x not in mine][:3]
                out.append(f"{name}: expected {_show(missing)}, got {_show(extra)}")
        return out[:limit]


def _show(rows: list[Any]) -> str:
    if not rows:
        return "nothing more"
    return "; ".join(" ".join(str(v) for v in (r if isinstance(r, tuple) else (r,))) for r in rows)


def observe(state: State) -> Observation:
    """The model's side of the comparison."""
    accounts: list[tuple[str, Decimal | None, Decimal | None]] = []
    for ws in state.world.workspaces:
        account = state.accounts.get(ws.name)
        if account is None:
            accounts.append((ws.name, None, None))
        else:
            accounts.append((ws.name, account.balance, account.total_used))
    sums: dict[tuple[str, str], Decimal] = {}
    for e in state.ledger:
        sums[(e.workspace, e.kind)] = sums.get((e.workspace, e.kind), ZERO) + e.amount
    return Observation(
        accounts=tuple(sorted(accounts)),
        ledger=tuple(sorted((ws, kind, amount) for (ws, kind), amount in sums.items())),
        sold=tuple(sorted(state.sold.items())),
        reservations=tuple(sorted(state.reservations)),
        purchases=tuple(
            sorted(
                (p.label, p.workspace, p.status.value, str(p.price), deliverable(state, p.label))
                for p in state.purchases.values()
            )
        ),
        emails=tuple(
            sorted((e.kind, e.recipient, e.workspace, e.purchase, e.status) for e in state.emails)
        ),
        keys=tuple(
            sorted(
                (ws, key, k.status.value, k.purchase or "") for (ws, key), k in state.keys.items()
            )
        ),
    )


__all__ = [
    "CRASH_POINTS",
    "Account",
    "Answer",
    "Bought",
    "Crashed",
    "Delivered",
    "Email",
    "Entry",
    "FrozenMap",
    "Key",
    "Lead",
    "Observation",
    "Purchase",
    "Reconciled",
    "Refused",
    "Request",
    "State",
    "Workspace",
    "World",
    "complete",
    "crash_purchase",
    "deliverable",
    "initial",
    "leads",
    "mark_sold",
    "observe",
    "purchase",
    "reapply",
    "reconcile",
    "reconcile_purchase",
    "refund",
    "run_worker",
    "top_up",
]
