"""invariants.*: the invariant checker (harness.money.invariants) over every database the other
checks left behind, before they are dropped."""

from __future__ import annotations

from harness.money import invariants
from harness.proofs.verify.registry import CheckFailed, CheckSkipped, check


@check("invariants.after-checks", final=True)
def after_checks(ctx) -> str:
    """Every invariant (balances equal their ledger, no overdraft, total_used, sold
    counts, max_sales, one purchase per lead and workspace, confirmation emails, debits)
    holds in every scratch database the other checks wrote through real flows."""
    dbs = ctx.databases(audited_only=True)
    if not dbs:
        raise CheckSkipped("no other check left a database to inspect")
    broken = []
    for _name, dsn, check_id in dbs:
        with ctx.connect(dsn) as conn:
            violations = invariants.check_invariants(conn)
        if violations:
            broken.append(f"after {check_id or '?'}: {invariants.summary(violations)}")
    if broken:
        raise CheckFailed(" | ".join(broken))
    names = sorted({c for _, _, c in dbs})
    return (
        f"{len(invariants.INVARIANTS)} invariants hold in {len(dbs)} databases "
        f"(after {', '.join(names)})"
    )
