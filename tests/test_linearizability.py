"""The linearizability checker: the search on histories of a toy register (no database),
then concurrent histories of the marketplace against a real server: the project's flows
pass, the legacy flow and examples/broken/no_row_lock are caught from the history alone."""

from __future__ import annotations

import random

import pytest
from conftest import ROOT

from harness.cli import cli
from harness.db.migrations import Migrator
from harness.proofs.linearizability import (
    Operation,
    check_history,
    failure_scenario,
    run_histories,
)

# -- the search, on a register: write(v) answers "ok", read answers the value ---------------


def register(state: int, op: tuple) -> tuple[int, object]:
    if op[0] == "write":
        return op[1], "ok"
    return state, state


def op(i: int, call: float, ret: float, inp: tuple, out: object, client: int = 0) -> Operation:
    return Operation(i, client, call, ret, inp, out)


def test_a_sequential_history_that_follows_the_model_is_linearizable():
    ops = [op(0, 0, 1, ("write", 1), "ok"), op(1, 2, 3, ("read",), 1)]
    verdict = check_history(ops, 0, register)
    assert verdict.linearizable is True and verdict.order == [0, 1]


def test_overlapping_operations_may_take_effect_in_either_order():
    # The read overlaps both writes: it may see either value.
    for seen in (1, 2):
        ops = [
            op(0, 0, 10, ("write", 1), "ok"),
            op(1, 0, 10, ("write", 2), "ok", client=1),
            op(2, 1, 9, ("read",), seen, client=2),
        ]
        assert check_history(ops, 0, register).linearizable is True


def test_a_stale_read_after_a_completed_write_is_not_linearizable():
    ops = [op(0, 0, 1, ("write", 1), "ok"), op(1, 2, 3, ("read",), 0, client=1)]
    verdict = check_history(ops, 0, register)
    assert verdict.linearizable is False
    assert verdict.longest == [0]
    assert verdict.blocked == [(1, 1)]  # the read could come next, but the model says 1


def test_real_time_order_is_respected():
    # Write 1 completed before write 2 started; a read after both must see 2, a read
    # overlapping write 2 may still see 1.
    writes = [op(0, 0, 1, ("write", 1), "ok"), op(1, 2, 3, ("write", 2), "ok")]
    assert (
        check_history([*writes, op(2, 4, 5, ("read",), 1, client=1)], 0, register).linearizable
        is False
    )
    assert check_history([*writes, op(2, 2.5, 5, ("read",), 1, client=1)], 0, register).linearizable


def test_the_final_state_must_be_one_an_order_reaches():
    ops = [op(0, 0, 10, ("write", 1), "ok"), op(1, 0, 10, ("write", 2), "ok", client=1)]
    assert check_history(ops, 0, register, final=lambda s: s == 1).linearizable is True
    verdict = check_history(ops, 0, register, final=lambda s: s == 3)
    assert verdict.linearizable is False and verdict.final_mismatch


def test_a_search_that_hits_its_bound_is_inconclusive_not_a_pass():
    ops = [op(i, 0, 10, ("write", i), "ok", client=i) for i in range(8)]
    ops.append(op(8, 11, 12, ("read",), 99))
    assert check_history(ops, 0, register, limit=50).linearizable is None


def test_memoisation_keeps_the_search_small():
    # Twelve concurrent writes of one value: 12! (479 million) orders to refute without
    # memoisation; with it, each of the 2**12 sets of writes done is explored once.
    ops = [op(i, 0, 10, ("write", 7), "ok", client=i) for i in range(12)]
    ops.append(op(12, 11, 12, ("read",), 8))
    verdict = check_history(ops, 0, register)
    assert verdict.linearizable is False
    assert verdict.explored < 2**12 * 13


# -- the marketplace ---------------------------------------------------------------------------


def migrated(clone_db, *dirs) -> str:
    dsn = clone_db(None)
    with Migrator(dsn, [str(d) for d in dirs]) as m:
        m.apply()
    return dsn


def test_the_project_flows_give_linearizable_histories(db):
    report = run_histories(db, rng=random.Random(0), flows=("atomic", "stepwise"), histories=6)
    assert report.failure is None, report.failure and report.failure.describe()
    assert report.inconclusive is None
    assert report.histories == 6 and report.peak_overlap >= 2
    assert all(3 <= c <= 6 for c in report.clients)
    assert 8 * 6 <= report.operations <= 16 * 6


def test_the_legacy_flow_is_caught_from_the_history_alone(db):
    report = run_histories(db, rng=random.Random(0), flows=("legacy",), histories=12)
    assert report.failure is not None
    text = report.failure.describe()
    assert text.startswith("not linearizable: ")
    assert "(legacy)" in text
    scenario = failure_scenario(report.failure)
    assert scenario.flow == "legacy" and scenario.steps[-2].concurrency > 1


def test_no_row_lock_is_caught_from_the_history_alone(clone_db):
    dsn = migrated(clone_db, ROOT / "migrations", ROOT / "examples/broken/no_row_lock")
    report = run_histories(dsn, rng=random.Random(0), flows=("atomic", "stepwise"), histories=12)
    assert report.failure is not None
    assert "not linearizable" in report.failure.describe()


@pytest.mark.parametrize("flow, code", [("legacy", 1), ("atomic", 0)])
def test_verify_drives_the_flow_it_is_given(admin_dsn, capsys, flow, code):
    assert (
        cli(["verify", "--dsn", admin_dsn, "--only", "model.linearizable", "--flow", flow]) == code
    )
    out = capsys.readouterr().out
    assert ("not linearizable" in out) == (code == 1)
