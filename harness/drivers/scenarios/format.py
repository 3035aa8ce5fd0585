"""Scenario files (``scenarios/*.toml``): parsing and strict validation.

The format is a public interface, documented in ``scenarios/README.md``. A file is read
whole and checked before anything runs: an unknown key, a wrong type or a name that
refers to nothing is one :class:`ScenarioError` naming the file and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from harness.errors import DOMAIN_ERRORS, ScenarioError
from harness.money.service import CRASH_POINTS, FLOWS
from harness.values import MAX_AMOUNT, parse_duration

ACTIONS = ("purchase", "topup", "crash_purchase", "reconcile", "run_worker")
EMAIL_COUNTS = ("queued", "sent", "dead")
UNEXPECTED = "unexpected"

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
}
STEP_KEYS: dict[str, set[str]] = {
    "purchase": PURCHASE_KEYS,
    "crash_purchase": PURCHASE_KEYS | {"after"},
    "topup": {"action", "workspace", "amount"},
    "reconcile": {"action", "older_than"},
    "run_worker": {"action"},
}
EXPECT_KEYS = {"succeeded", "errors", "balances", "sold", "emails", "invariants"}


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

    @property
    def label(self) -> str:
        return f"steps[{self.index}] ({self.action})"


@dataclass(frozen=True)
class Expect:
    """What the scenario must end with; None: not checked."""

    succeeded: int | None = None
    errors: dict[str, int] | None = None
    balances: dict[str, Decimal] = field(default_factory=dict)
    sold: dict[str, int] = field(default_factory=dict)
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

    def string(self, value: Any, key: str, *, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {_kind(value)}")
        if choices and value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, value: Any, key: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, got {_kind(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def money(self, value: Any, key: str, *, positive: bool = False) -> Decimal:
        if isinstance(value, float):
            raise self.fail(key, f'write amounts as strings, e.g. "{value:.2f}", not {value}')
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(key, f'expected an amount like "10.00", got {_kind(value)}')
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(key, f"{value!r} is not an amount") from None
        if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
            raise self.fail(key, f"{value!r} must have at most two decimals")
        if amount < 0 or (positive and amount == 0) or amount > MAX_AMOUNT:
            low = "above 0" if positive else "at least 0"
            raise self.fail(key, f"{value!r} must be {low} and at most {MAX_AMOUNT}")
        return amount.quantize(Decimal("0.01"))

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

    def table_list(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise self.fail(key, f"expected an array of tables ([[{key}]]), got {_kind(value)}")
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
        flow = self.string(data["flow"], "flow", choices=FLOWS) if "flow" in data else None

        workspaces = tuple(
            self.workspace(t, f"workspaces[{i}]")
            for i, t in enumerate(self.table_list(data, "workspaces"))
        )
        self.unique([w.name for w in workspaces], "workspaces", "workspace")
        partners = tuple(
            self.partner(t, f"partners[{i}]")
            for i, t in enumerate(self.table_list(data, "partners"))
        )
        self.unique([p.name for p in partners], "partners", "partner")
        partner_names = {p.name for p in partners}
        leads = tuple(
            self.lead(t, f"leads[{i}]", partner_names)
            for i, t in enumerate(self.table_list(data, "leads"))
        )
        self.unique([n for g in leads for n in g.lead_names], "leads", "lead")

        steps_data = self.table_list(data, "steps")
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
        expect = self.expect(data.get("expect", {}), ws_names, set(lead_names))
        return Scenario(
            self.path, name, description, flow, workspaces, partners, leads, steps, expect
        )

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
            members=self.integer(t.get("members", 1), f"{where}.members"),
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
            count=self.integer(t.get("count", 1), f"{where}.count", minimum=1),
            price=self.money(t["price"], f"{where}.price", positive=True),
            partner=partner,
            max_sales=(
                self.integer(t["max_sales"], f"{where}.max_sales", minimum=1)
                if "max_sales" in t
                else None
            ),
            age_days=self.integer(t.get("age_days", 0), f"{where}.age_days"),
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
            )
        if action == "reconcile":
            return Step(
                index,
                action,
                older_than=self.duration(t.get("older_than", "0s"), f"{where}.older_than"),
            )
        if action == "run_worker":
            return Step(index, action)
        return self.purchase_step(t, index, action, workspaces, leads)

    def purchase_step(
        self, t: dict[str, Any], index: int, action: str, workspaces: set[str], leads: list[str]
    ) -> Step:
        where = f"steps[{index}]"
        if "workspace" not in t:
            raise self.fail(f"{where}.workspace", "missing")
        ws = self.workspace_ref(t["workspace"], f"{where}.workspace", workspaces)
        repeat = self.integer(t.get("repeat", 1), f"{where}.repeat", minimum=1)
        concurrency = self.integer(t.get("concurrency", 1), f"{where}.concurrency", minimum=1)
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
                t["leads_per_purchase"], f"{where}.leads_per_purchase", minimum=1
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

    def expect(self, t: Any, workspaces: set[str], leads: set[str]) -> Expect:
        self.keys(t, EXPECT_KEYS, "expect")
        errors = None
        if "errors" in t:
            table = self.keys(
                t["errors"], set(DOMAIN_ERRORS) | {UNEXPECTED}, "expect.errors", "error code"
            )
            errors = {code: self.integer(n, f"expect.errors.{code}") for code, n in table.items()}
        balances = {}
        for name, amount in self.keys(
            t.get("balances", {}), workspaces, "expect.balances", "workspace"
        ).items():
            balances[name] = self.money(amount, f"expect.balances.{name}")
        sold = {
            name: self.integer(n, f"expect.sold.{name}")
            for name, n in self.keys(t.get("sold", {}), leads, "expect.sold", "lead").items()
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
            sold=sold,
            emails=emails,
            invariants=(
                self.string(t["invariants"], "expect.invariants", choices=("hold", "violated"))
                if "invariants" in t
                else "hold"
            ),
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
    "load_scenario",
    "load_scenarios",
    "parse_scenario",
]
