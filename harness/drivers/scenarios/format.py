"""Scenario files (``scenarios/*.toml``): parsing, strict validation and writing.

The format is a public interface, documented in ``scenarios/README.md``. A file is read
whole and checked before anything runs: an unknown key, a wrong type, a value beyond the
format's bounds or a name that refers to nothing is one :class:`ScenarioError` naming the
file and the key. The bounds are checked before anything is built from a value, so a
huge count fails at once instead of after minutes and gigabytes. :func:`dump` writes a
:class:`Scenario` back as TOML (``harness verify --save-failures`` writes the sequences
the model checks found this way); :func:`model_world` gives the model's view of its world.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from harness.errors import DOMAIN_ERRORS, ScenarioError
from harness.money import model
from harness.money.service import CRASH_POINTS, FLOWS
from harness.values import MAX_AMOUNT, amount, parse_duration, show_duration

ACTIONS = (
    "purchase",
    "topup",
    "crash_purchase",
    "reconcile",
    "run_worker",
    "refund",
    "complete",
    "mark_sold",
    "reconcile_purchase",
    "leads",
    "reapply",
)
# Actions that act on one purchase an earlier step made and labelled.
LIFECYCLE = ("refund", "complete", "mark_sold", "reconcile_purchase", "leads")
EMAIL_COUNTS = ("queued", "sent", "dead")
UNEXPECTED = "unexpected"
STATUSES = ("pending", "completed", "refunded")
# What each single-purchase or lifecycle step may be expected to answer ("expect").
OUTCOMES: dict[str, tuple[str, ...]] = {
    "purchase": ("ok", "replayed", *sorted(DOMAIN_ERRORS), UNEXPECTED),
    "crash_purchase": ("crashed", *sorted(DOMAIN_ERRORS), UNEXPECTED),
    "refund": (*STATUSES, "missing"),
    "complete": (*STATUSES, "missing"),
    "reconcile_purchase": ("completed", "refunded", "unchanged", "missing"),
    "mark_sold": ("marked", "sold_out", "not_pending"),
}

# Bounds: a file cannot ask for more than a test world needs, so a typo (an extra zero,
# or seven) is an error at once, never minutes of building and gigabytes of memory.
MAX_LEADS = 10_000  # leads in a scenario, all groups together
MAX_PURCHASES = 1_000  # purchases in one step (repeat), so concurrency too
MAX_NAME = 200  # characters of any name: scenario, workspace, user, partner, lead, key, label
MAX_WORKSPACES = 1_000
MAX_MEMBERS = 1_000  # per workspace
MAX_PARTNERS = 1_000
MAX_STEPS = 10_000
MAX_DESCRIPTION = 10_000
MAX_SALES = 2**31 - 1  # leads.max_sales is an integer column
MAX_AGE_DAYS = 36_500

TOP_KEYS = {"name", "description", "flow", "workspaces", "partners", "leads", "steps", "expect"}
WORKSPACE_KEYS = {"name", "balance", "members"}
PARTNER_KEYS = {"name", "base_commission_rate", "bonus_commission_rate", "verification_pass_rate"}
LEAD_KEYS = {"name", "count", "price", "partner", "max_sales", "age_days"}
PURCHASE_KEYS = {
    "action",
    "workspace",
    "user",
    "leads",
    "leads_per_purchase",
    "repeat",
    "concurrency",
    "idempotency_key",
    "flow",
    "label",
    "expect",
    "expect_balance",
    "expect_leads",
    "expect_purchase",
}
STEP_KEYS: dict[str, set[str]] = {
    "purchase": PURCHASE_KEYS,
    "crash_purchase": PURCHASE_KEYS | {"after"},
    "topup": {"action", "workspace", "amount", "expect_balance"},
    "reconcile": {"action", "older_than", "expect_completed", "expect_refunded", "expect_emailed"},
    "run_worker": {"action"},
    "refund": {"action", "purchase", "expect"},
    "complete": {"action", "purchase", "expect"},
    "mark_sold": {"action", "purchase", "expect"},
    "reconcile_purchase": {"action", "purchase", "expect"},
    "leads": {"action", "purchase", "workspace", "expect_leads"},
    "reapply": {"action"},
}
EXPECT_KEYS = {
    "succeeded",
    "errors",
    "balances",
    "total_used",
    "sold",
    "statuses",
    "emails",
    "invariants",
}


@dataclass(frozen=True)
class WorkspaceSpec:
    """A workspace, its members ``<name>-0`` .. and its opening balance (None: no account)."""

    name: str
    balance: Decimal | None
    members: int

    @property
    def member_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.members)]


@dataclass(frozen=True)
class PartnerSpec:
    """A partner and its commission rates."""

    name: str
    base_commission_rate: Decimal
    bonus_commission_rate: Decimal
    verification_pass_rate: Decimal


@dataclass(frozen=True)
class LeadSpec:
    """A group of identical leads ``<name>-0`` .. ``<name>-(count-1)``."""

    name: str
    count: int
    price: Decimal
    partner: str | None
    max_sales: int | None
    age_days: int

    @property
    def lead_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]


@dataclass(frozen=True)
class Step:
    """One step; fields that do not apply to its action keep their defaults."""

    index: int
    action: str
    workspaces: tuple[str, ...] = ()
    user: str | None = None
    # Explicit lead lists, rotated through by the step's purchases (usually just one).
    leads: tuple[tuple[str, ...], ...] | None = None
    leads_per_purchase: int | None = None
    repeat: int = 1
    concurrency: int = 1
    idempotency_key: str | None = None
    flow: str | None = None
    after: str | None = None
    amount: Decimal | None = None
    older_than: timedelta = timedelta(0)
    # The purchase this step makes (``label``) or acts on (``purchase``), by label.
    label: str | None = None
    purchase: str | None = None
    # What a single purchase or lifecycle call must answer; None: not checked.
    expect: str | None = None
    expect_balance: Decimal | None = None
    expect_leads: tuple[str, ...] | None = None
    expect_purchase: str | None = None
    expect_completed: tuple[str, ...] | None = None
    expect_refunded: tuple[str, ...] | None = None
    expect_emailed: tuple[str, ...] | None = None

    @property
    def where(self) -> str:
        """How reports name the step: ``steps[3] (refund p1)``."""
        target = self.purchase or self.label
        return f"steps[{self.index}] ({self.action}{' ' + target if target else ''})"


@dataclass(frozen=True)
class Expect:
    """What the scenario must end with; None: not checked."""

    succeeded: int | None = None
    errors: dict[str, int] | None = None
    balances: dict[str, Decimal] = field(default_factory=dict)
    total_used: dict[str, Decimal] = field(default_factory=dict)
    sold: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    emails: dict[str, int] = field(default_factory=dict)
    invariants: str = "hold"


@dataclass(frozen=True)
class Scenario:
    """A parsed, checked scenario file."""

    path: Path
    name: str
    description: str
    flow: str | None
    workspaces: tuple[WorkspaceSpec, ...]
    partners: tuple[PartnerSpec, ...]
    leads: tuple[LeadSpec, ...]
    steps: tuple[Step, ...]
    expect: Expect

    @property
    def lead_names(self) -> list[str]:
        return [n for group in self.leads for n in group.lead_names]

    @property
    def member_names(self) -> dict[str, list[str]]:
        return {w.name: w.member_names for w in self.workspaces}


# -- reading ---------------------------------------------------------------------------------


def load_scenarios(paths: list[str | Path]) -> list[Scenario]:
    """Every file parsed and checked; the first bad one raises before any runs."""
    if not paths:
        raise ScenarioError("no scenario files given")
    return [load_scenario(p) for p in paths]


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return parse_scenario(data, path)


def parse_scenario(data: dict[str, Any], path: str | Path = "<scenario>") -> Scenario:
    """Check a decoded TOML document against the format."""
    return _Parser(Path(path)).scenario(data)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {key}: {problem}")

    # -- typed getters --------------------------------------------------------------------

    def keys(
        self, table: Any, allowed: set[str], where: str, what: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(where, f"expected a table, got {_kind(table)}")
        unknown = sorted(set(table) - allowed)
        if unknown:
            key = f"{where}.{unknown[0]}" if where else unknown[0]
            if what == "error code":
                raise self.fail(
                    key, f"unknown error code {unknown[0]!r} (codes: {', '.join(sorted(allowed))})"
                )
            if what:
                raise self.fail(key, f"unknown {what} {unknown[0]!r}")
            raise self.fail(key, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return table

    def string(
        self,
        value: Any,
        key: str,
        *,
        choices: tuple[str, ...] | None = None,
        longest: int = MAX_NAME,
    ) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {_kind(value)}")
        if len(value) > longest:
            raise self.fail(key, f"{len(value):,} characters is too long (at most {longest:,})")
        if choices and value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, value: Any, key: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, got {_kind(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"must be at most {maximum:,}, got {value:,}")
        return value

    def money(self, value: Any, key: str, *, positive: bool = False) -> Decimal:
        """An amount: a string (or whole number) that :func:`harness.values.amount`
        takes, so ``1e2``, ``NaN``, ``1e400`` and fractions of a cent are refused here,
        with the key, and never reach the database."""
        if isinstance(value, float):
            shown = f'"{value:.2f}"' if math.isfinite(value) else '"10.00"'
            raise self.fail(key, f"write amounts as strings, e.g. {shown}, not {value}")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(key, f'expected an amount like "10.00", got {_kind(value)}')
        try:
            return amount(value, positive=positive)
        except ValueError as exc:
            raise self.fail(
                key,
                f"{exc} (an amount is a plain decimal with at most two decimals, "
                f'at most {MAX_AMOUNT}, e.g. "10.00")',
            ) from None

    def rate(self, value: Any, key: str) -> Decimal:
        if isinstance(value, float):
            raise self.fail(key, f'write rates as strings, e.g. "{value}", not {value}')
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(key, f'expected a rate like "0.30", got {_kind(value)}')
        try:
            rate = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(key, f"{value!r} is not a number") from None
        if not rate.is_finite() or not 0 <= rate <= 1 or rate != round(rate, 4):
            raise self.fail(key, f"{value!r} must be between 0 and 1 with at most 4 decimals")
        return rate

    def duration(self, value: Any, key: str) -> timedelta:
        text = self.string(value, key)
        try:
            return parse_duration(text)
        except ValueError:
            raise self.fail(key, f'{text!r} is not a duration like "0s", "90s", "5m"') from None

    def table_list(
        self, data: dict[str, Any], key: str, most: int | None = None
    ) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise self.fail(key, f"expected an array of tables ([[{key}]]), got {_kind(value)}")
        if most is not None and len(value) > most:
            raise self.fail(key, f"{len(value):,} entries; at most {most:,}")
        return value

    # -- sections -------------------------------------------------------------------------

    def scenario(self, data: dict[str, Any]) -> Scenario:
        self.keys(data, TOP_KEYS, "")
        if "name" not in data:
            raise self.fail("name", "missing (every scenario has a name)")
        name = self.string(data["name"], "name")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected a string, got {_kind(description)}")
        if len(description) > MAX_DESCRIPTION:
            raise self.fail(
                "description",
                f"{len(description):,} characters is too long (at most {MAX_DESCRIPTION:,})",
            )
        flow = self.string(data["flow"], "flow", choices=FLOWS) if "flow" in data else None

        workspaces = tuple(
            self.workspace(t, f"workspaces[{i}]")
            for i, t in enumerate(self.table_list(data, "workspaces", MAX_WORKSPACES))
        )
        self.unique([w.name for w in workspaces], "workspaces", "workspace")
        partners = tuple(
            self.partner(t, f"partners[{i}]")
            for i, t in enumerate(self.table_list(data, "partners", MAX_PARTNERS))
        )
        self.unique([p.name for p in partners], "partners", "partner")
        partner_names = {p.name for p in partners}
        leads = tuple(
            self.lead(t, f"leads[{i}]", partner_names)
            for i, t in enumerate(self.table_list(data, "leads", MAX_LEADS))
        )
        total = sum(g.count for g in leads)
        if total > MAX_LEADS:
            raise self.fail(
                "leads", f"{total:,} leads in all; a scenario declares at most {MAX_LEADS:,}"
            )
        self.unique([n for g in leads for n in g.lead_names], "leads", "lead")

        steps_data = self.table_list(data, "steps", MAX_STEPS)
        if not steps_data:
            raise self.fail("steps", "missing: a scenario needs at least one [[steps]]")
        ws_names = {w.name for w in workspaces}
        lead_names = [n for g in leads for n in g.lead_names]
        steps = tuple(self.step(t, i, ws_names, lead_names) for i, t in enumerate(steps_data))
        members = {w.name: w.members for w in workspaces}
        for step in steps:
            empty = [w for w in step.workspaces if not members[w]]
            if step.action in ("purchase", "crash_purchase") and step.user is None and empty:
                raise self.fail(
                    f"steps[{step.index}].user",
                    f"missing: workspace {empty[0]!r} has no members to buy as",
                )
        labels = self.labels(steps)
        expect = self.expect(data.get("expect", {}), ws_names, set(lead_names), labels)
        return Scenario(
            self.path, name, description, flow, workspaces, partners, leads, steps, expect
        )

    def labels(self, steps: tuple[Step, ...]) -> set[str]:
        """Every label is made by one step and named only by later steps."""
        made: set[str] = set()
        for step in steps:
            where = f"steps[{step.index}]"
            if step.purchase is not None and step.purchase not in made:
                raise self.fail(
                    f"{where}.purchase",
                    f"no earlier step makes a purchase labelled {step.purchase!r}",
                )
            if step.label is not None:
                if step.label in made:
                    raise self.fail(f"{where}.label", f"label {step.label!r} is used twice")
                made.add(step.label)
        return made

    def unique(self, names: list[str], key: str, what: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise self.fail(key, f"{what} name {name!r} is used twice")
            seen.add(name)

    def workspace(self, t: dict[str, Any], where: str) -> WorkspaceSpec:
        self.keys(t, WORKSPACE_KEYS, where)
        if "name" not in t:
            raise self.fail(f"{where}.name", "missing")
        return WorkspaceSpec(
            name=self.string(t["name"], f"{where}.name"),
            balance=self.money(t["balance"], f"{where}.balance") if "balance" in t else None,
            members=self.integer(t.get("members", 1), f"{where}.members", maximum=MAX_MEMBERS),
        )

    def partner(self, t: dict[str, Any], where: str) -> PartnerSpec:
        self.keys(t, PARTNER_KEYS, where)
        for key in ("name", "base_commission_rate"):
            if key not in t:
                raise self.fail(f"{where}.{key}", "missing")
        return PartnerSpec(
            name=self.string(t["name"], f"{where}.name"),
            base_commission_rate=self.rate(
                t["base_commission_rate"], f"{where}.base_commission_rate"
            ),
            bonus_commission_rate=self.rate(
                t.get("bonus_commission_rate", "0"), f"{where}.bonus_commission_rate"
            ),
            verification_pass_rate=self.rate(
                t.get("verification_pass_rate", "0"), f"{where}.verification_pass_rate"
            ),
        )

    def lead(self, t: dict[str, Any], where: str, partners: set[str]) -> LeadSpec:
        self.keys(t, LEAD_KEYS, where)
        for key in ("name", "price"):
            if key not in t:
                raise self.fail(f"{where}.{key}", "missing")
        partner = None
        if "partner" in t:
            partner = self.string(t["partner"], f"{where}.partner")
            if partner not in partners:
                raise self.fail(f"{where}.partner", f"unknown partner {partner!r}")
        return LeadSpec(
            name=self.string(t["name"], f"{where}.name"),
            count=self.integer(t.get("count", 1), f"{where}.count", minimum=1, maximum=MAX_LEADS),
            price=self.money(t["price"], f"{where}.price", positive=True),
            partner=partner,
            max_sales=(
                self.integer(t["max_sales"], f"{where}.max_sales", minimum=1, maximum=MAX_SALES)
                if "max_sales" in t
                else None
            ),
            age_days=self.integer(t.get("age_days", 0), f"{where}.age_days", maximum=MAX_AGE_DAYS),
        )

    def step(self, t: dict[str, Any], index: int, workspaces: set[str], leads: list[str]) -> Step:
        where = f"steps[{index}]"
        if not isinstance(t, dict) or "action" not in t:
            raise self.fail(f"{where}.action", f"missing (one of {', '.join(ACTIONS)})")
        action = self.string(t["action"], f"{where}.action", choices=ACTIONS)
        self.keys(t, STEP_KEYS[action], where)
        if action == "topup":
            for key in ("workspace", "amount"):
                if key not in t:
                    raise self.fail(f"{where}.{key}", "missing")
            ws = self.workspace_ref(t["workspace"], f"{where}.workspace", workspaces)
            if isinstance(t["workspace"], list):
                raise self.fail(f"{where}.workspace", "a top-up names one workspace")
            return Step(
                index,
                action,
                workspaces=ws,
                amount=self.money(t["amount"], f"{where}.amount", positive=True),
                expect_balance=self.optional_money(t, "expect_balance", where),
            )
        if action == "reconcile":
            return Step(
                index,
                action,
                older_than=self.duration(t.get("older_than", "0s"), f"{where}.older_than"),
                expect_completed=self.optional_labels(t, "expect_completed", where),
                expect_refunded=self.optional_labels(t, "expect_refunded", where),
                expect_emailed=self.optional_labels(t, "expect_emailed", where),
            )
        if action in ("run_worker", "reapply"):
            return Step(index, action)
        if action in LIFECYCLE:
            return self.lifecycle_step(t, index, action, workspaces, set(leads))
        return self.purchase_step(t, index, action, workspaces, leads)

    def optional_money(self, t: dict[str, Any], key: str, where: str) -> Decimal | None:
        return self.money(t[key], f"{where}.{key}") if key in t else None

    def optional_labels(self, t: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
        if key not in t:
            return None
        value = t[key]
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}", f"expected a list of labels, got {_kind(value)}")
        return tuple(self.string(v, f"{where}.{key}[{i}]") for i, v in enumerate(value))

    def outcome(self, t: dict[str, Any], action: str, where: str) -> str | None:
        if "expect" not in t:
            return None
        return self.string(t["expect"], f"{where}.expect", choices=OUTCOMES[action])

    def lifecycle_step(
        self, t: dict[str, Any], index: int, action: str, workspaces: set[str], leads: set[str]
    ) -> Step:
        where = f"steps[{index}]"
        if "purchase" not in t:
            raise self.fail(f"{where}.purchase", "missing: the label of an earlier purchase")
        ws: tuple[str, ...] = ()
        if "workspace" in t:
            ws = self.workspace_ref(t["workspace"], f"{where}.workspace", workspaces)
            if isinstance(t["workspace"], list):
                raise self.fail(f"{where}.workspace", "names one workspace")
        expect_leads = None
        if "expect_leads" in t:
            value = t["expect_leads"]
            if not isinstance(value, list):
                raise self.fail(f"{where}.expect_leads", f"expected a list, got {_kind(value)}")
            expect_leads = self.names_of(value, f"{where}.expect_leads", leads)
        return Step(
            index,
            action,
            workspaces=ws,
            purchase=self.string(t["purchase"], f"{where}.purchase"),
            expect=self.outcome(t, action, where) if action != "leads" else None,
            expect_leads=expect_leads,
        )

    def names_of(self, names: list[Any], key: str, known: set[str]) -> tuple[str, ...]:
        for j, name in enumerate(names):
            self.string(name, f"{key}[{j}]")
            if name not in known:
                raise self.fail(f"{key}[{j}]", f"unknown lead {name!r}")
        return tuple(names)

    def purchase_step(
        self, t: dict[str, Any], index: int, action: str, workspaces: set[str], leads: list[str]
    ) -> Step:
        where = f"steps[{index}]"
        if "workspace" not in t:
            raise self.fail(f"{where}.workspace", "missing")
        ws = self.workspace_ref(t["workspace"], f"{where}.workspace", workspaces)
        repeat = self.integer(
            t.get("repeat", 1), f"{where}.repeat", minimum=1, maximum=MAX_PURCHASES
        )
        concurrency = self.integer(
            t.get("concurrency", 1), f"{where}.concurrency", minimum=1, maximum=MAX_PURCHASES
        )
        if concurrency > repeat:
            raise self.fail(f"{where}.concurrency", f"{concurrency} is more than repeat ({repeat})")
        if ("leads" in t) == ("leads_per_purchase" in t):
            raise self.fail(f"{where}.leads", "give exactly one of leads and leads_per_purchase")
        lead_lists = None
        per_purchase = None
        if "leads" in t:
            lead_lists = self.lead_lists(t["leads"], f"{where}.leads", set(leads))
        else:
            per_purchase = self.integer(
                t["leads_per_purchase"],
                f"{where}.leads_per_purchase",
                minimum=1,
                maximum=MAX_LEADS,
            )
            if per_purchase * repeat > len(leads):
                raise self.fail(
                    f"{where}.leads_per_purchase",
                    f"{repeat} purchase(s) of {per_purchase} need "
                    f"{per_purchase * repeat} leads; the scenario declares "
                    f"{len(leads)}",
                )
        flow = self.string(t["flow"], f"{where}.flow", choices=FLOWS) if "flow" in t else None
        after = None
        if action == "crash_purchase":
            if "after" not in t:
                raise self.fail(f"{where}.after", f"missing (one of {', '.join(CRASH_POINTS)})")
            after = self.string(t["after"], f"{where}.after", choices=CRASH_POINTS)
            if flow not in (None, "stepwise"):
                raise self.fail(f"{where}.flow", "crash_purchase runs the stepwise flow only")
        single = {"label", "expect", "expect_balance", "expect_leads", "expect_purchase"} & set(t)
        if single and repeat != 1:
            raise self.fail(
                f"{where}.{sorted(single)[0]}", "only a step of one purchase (repeat = 1) has it"
            )
        expect_leads = None
        if "expect_leads" in t:
            value = t["expect_leads"]
            if not isinstance(value, list):
                raise self.fail(f"{where}.expect_leads", f"expected a list, got {_kind(value)}")
            expect_leads = self.names_of(value, f"{where}.expect_leads", set(leads))
        return Step(
            index,
            action,
            workspaces=ws,
            user=self.string(t["user"], f"{where}.user") if "user" in t else None,
            leads=lead_lists,
            leads_per_purchase=per_purchase,
            repeat=repeat,
            concurrency=concurrency,
            idempotency_key=(
                self.string(t["idempotency_key"], f"{where}.idempotency_key")
                if "idempotency_key" in t
                else None
            ),
            flow=flow,
            after=after,
            label=self.string(t["label"], f"{where}.label") if "label" in t else None,
            expect=self.outcome(t, action, where),
            expect_balance=self.optional_money(t, "expect_balance", where),
            expect_leads=expect_leads,
            expect_purchase=(
                self.string(t["expect_purchase"], f"{where}.expect_purchase")
                if "expect_purchase" in t
                else None
            ),
        )

    def workspace_ref(self, value: Any, key: str, known: set[str]) -> tuple[str, ...]:
        names = value if isinstance(value, list) else [value]
        if not names:
            raise self.fail(key, "an empty list names no workspace")
        for i, name in enumerate(names):
            k = f"{key}[{i}]" if isinstance(value, list) else key
            self.string(name, k)
            if name not in known:
                raise self.fail(k, f"unknown workspace {name!r}")
        return tuple(names)

    def lead_lists(self, value: Any, key: str, known: set[str]) -> tuple[tuple[str, ...], ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a non-empty list of lead names, got {_kind(value)}")
        nested = all(isinstance(v, list) for v in value)
        lists = value if nested else [value]
        out = []
        for i, names in enumerate(lists):
            k = f"{key}[{i}]" if nested else key
            if not names:
                raise self.fail(k, "an empty list names no lead")
            for j, name in enumerate(names):
                self.string(name, f"{k}[{j}]")
                if name not in known:
                    raise self.fail(f"{k}[{j}]", f"unknown lead {name!r}")
            out.append(tuple(names))
        return tuple(out)

    def expect(self, t: Any, workspaces: set[str], leads: set[str], labels: set[str]) -> Expect:
        self.keys(t, EXPECT_KEYS, "expect")
        errors = None
        if "errors" in t:
            table = self.keys(
                t["errors"], set(DOMAIN_ERRORS) | {UNEXPECTED}, "expect.errors", "error code"
            )
            errors = {code: self.integer(n, f"expect.errors.{code}") for code, n in table.items()}
        balances = {}
        for name, value in self.keys(
            t.get("balances", {}), workspaces, "expect.balances", "workspace"
        ).items():
            balances[name] = self.money(value, f"expect.balances.{name}")
        total_used = {}
        for name, value in self.keys(
            t.get("total_used", {}), workspaces, "expect.total_used", "workspace"
        ).items():
            total_used[name] = self.money(value, f"expect.total_used.{name}")
        sold = {
            name: self.integer(n, f"expect.sold.{name}")
            for name, n in self.keys(t.get("sold", {}), leads, "expect.sold", "lead").items()
        }
        statuses = {
            name: self.string(value, f"expect.statuses.{name}", choices=STATUSES)
            for name, value in self.keys(
                t.get("statuses", {}), labels, "expect.statuses", "purchase label"
            ).items()
        }
        emails = {
            k: self.integer(n, f"expect.emails.{k}")
            for k, n in self.keys(t.get("emails", {}), set(EMAIL_COUNTS), "expect.emails").items()
        }
        return Expect(
            succeeded=(
                self.integer(t["succeeded"], "expect.succeeded") if "succeeded" in t else None
            ),
            errors=errors,
            balances=balances,
            total_used=total_used,
            sold=sold,
            statuses=statuses,
            emails=emails,
            invariants=(
                self.string(t["invariants"], "expect.invariants", choices=("hold", "violated"))
                if "invariants" in t
                else "hold"
            ),
        )


# -- writing --------------------------------------------------------------------------------


def _toml(value: Any) -> str:
    """A TOML value: strings (amounts too) in basic-string quotes, whole numbers bare,
    lists and inline tables of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal | str):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _step_fields(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"action": step.action}
    if step.workspaces:
        out["workspace"] = step.workspaces[0] if len(step.workspaces) == 1 else step.workspaces
    if step.purchase is not None:
        out["purchase"] = step.purchase
    if step.user is not None:
        out["user"] = step.user
    if step.leads is not None:
        out["leads"] = step.leads[0] if len(step.leads) == 1 else [list(x) for x in step.leads]
    if step.leads_per_purchase is not None:
        out["leads_per_purchase"] = step.leads_per_purchase
    if step.action in ("purchase", "crash_purchase"):
        if step.repeat != 1:
            out["repeat"] = step.repeat
        if step.concurrency != 1:
            out["concurrency"] = step.concurrency
    for name in ("idempotency_key", "flow", "after", "amount", "label"):
        if getattr(step, name) is not None:
            out[name] = getattr(step, name)
    if step.action == "reconcile" and step.older_than:
        out["older_than"] = show_duration(step.older_than)
    for name in (
        "expect",
        "expect_balance",
        "expect_leads",
        "expect_purchase",
        "expect_completed",
        "expect_refunded",
        "expect_emailed",
    ):
        if getattr(step, name) is not None:
            out[name] = getattr(step, name)
    return out


def dump(scenario: Scenario) -> str:
    """The scenario as a TOML file that :func:`load_scenario` reads back as the same
    scenario (its path aside)."""
    lines = [f"name = {_toml(scenario.name)}"]
    if scenario.description:
        lines.append(f"description = {_toml(scenario.description)}")
    if scenario.flow:
        lines.append(f"flow = {_toml(scenario.flow)}")
    for ws in scenario.workspaces:
        lines += ["", "[[workspaces]]", f"name = {_toml(ws.name)}"]
        if ws.balance is not None:
            lines.append(f"balance = {_toml(ws.balance)}")
        lines.append(f"members = {ws.members}")
    for pt in scenario.partners:
        lines += ["", "[[partners]]", f"name = {_toml(pt.name)}"]
        for name in ("base_commission_rate", "bonus_commission_rate", "verification_pass_rate"):
            lines.append(f"{name} = {_toml(getattr(pt, name))}")
    for group in scenario.leads:
        lines += ["", "[[leads]]", f"name = {_toml(group.name)}", f"count = {group.count}"]
        lines.append(f"price = {_toml(group.price)}")
        if group.partner is not None:
            lines.append(f"partner = {_toml(group.partner)}")
        if group.max_sales is not None:
            lines.append(f"max_sales = {group.max_sales}")
        if group.age_days:
            lines.append(f"age_days = {group.age_days}")
    for step in scenario.steps:
        lines += ["", "[[steps]]"]
        lines += [f"{k} = {_toml(v)}" for k, v in _step_fields(step).items()]
    e = scenario.expect
    lines += ["", "[expect]"]
    if e.succeeded is not None:
        lines.append(f"succeeded = {e.succeeded}")
    if e.errors is not None:
        lines.append(f"errors = {_toml(e.errors)}")
    for name in ("balances", "total_used", "sold", "statuses", "emails"):
        if getattr(e, name):
            lines.append(f"{name} = {_toml(getattr(e, name))}")
    lines.append(f"invariants = {_toml(e.invariants)}")
    return "\n".join(lines) + "\n"


def model_world(scenario: Scenario) -> model.World:
    """The scenario's world as :mod:`harness.money.model` sees it: workspaces with their
    members and opening balances, every lead by name, and the outsiders its steps name."""
    members = {m for ws in scenario.workspaces for m in ws.member_names}
    outsiders = sorted({s.user for s in scenario.steps if s.user and s.user not in members})
    return model.World(
        workspaces=tuple(
            model.Workspace(ws.name, tuple(ws.member_names), ws.balance)
            for ws in scenario.workspaces
        ),
        leads=tuple(
            model.Lead(name, group.price, group.max_sales)
            for group in scenario.leads
            for name in group.lead_names
        ),
        outsiders=tuple(outsiders),
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


__all__ = [
    "Expect",
    "LeadSpec",
    "PartnerSpec",
    "Scenario",
    "ScenarioError",
    "Step",
    "WorkspaceSpec",
    "dump",
    "load_scenario",
    "load_scenarios",
    "model_world",
    "parse_scenario",
]
