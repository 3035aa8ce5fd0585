# ruff: noqa: E402, I001  (the import order below is deliberate)
"""Locust users that buy leads through the purchase flows, against a real database.

Run by ``harness load`` (headless), or by hand with the web UI::

    HARNESS_DSN=postgresql:///loaddb locust -f loadtests/locustfile.py

Configuration, by environment (the same on the master and on every worker):

* ``HARNESS_DSN``: the database, migrated; seeded with the built-in data set when it has
  no workspace yet (``HARNESS_SCENARIO=FILE`` seeds a scenario file's data instead).
* ``HARNESS_LOAD_FLOW``: ``atomic``, ``stepwise``, ``legacy``, ``direct`` (one
  ``purchase_with_credits`` call), or weights such as ``atomic=2,stepwise=1,direct=1``
  (default ``HARNESS_PURCHASE_FLOW``, else that mix; ``harness load`` passes the
  scenario's ``flow``).
* ``HARNESS_LOAD_LEADS_PER_PURCHASE``: leads in each purchase (default 1).
* ``HARNESS_LOAD_THINK_MS``: pause between one user's purchases (default 0).
* ``HARNESS_LOAD_INVARIANTS``: ``on`` (default) runs the invariant checker once, at the
  end, on the master or local runner; ``off`` leaves it to the caller.

Each purchase is reported under ``<flow>:<outcome>``: ``atomic:purchased``, or a
documented refusal such as ``atomic:insufficient_credits`` (a success: the system said
no, correctly), or ``atomic:unexpected`` (a failure: anything else).
"""

# Import order matters. locust monkey-patches the standard library with gevent when it is
# imported; psycopg chooses its wait function when *it* is imported. Imported the other way
# round, psycopg keeps its C wait, which blocks the whole process: every "concurrent" user
# would run one query at a time and the latencies would be false.
import locust  # noqa: F401  (first: it monkey-patches the standard library)
import gevent
from locust import User, events, task
from locust.runners import LocalRunner, MasterRunner
from locust.user.task import LOCUST_STATE_STOPPING

import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.drivers import load

# The check lives with the load driver, shared with http_locustfile.py.
_problem = load.cooperative_wait_problem()
if _problem:
    sys.exit(f"locustfile: refusing to run: {_problem}")

from harness import env

log = logging.getLogger("harness.drivers.load")


events.init.add_listener(load.save_failures_at_quit)

THINK_TIME_S = env.read("HARNESS_LOAD_THINK_MS") / 1000


class Purchaser(User):
    """One buyer session: its own connection, buying as fast as the database answers."""

    def on_start(self) -> None:
        self.plan = load.plan_for(self.environment)
        self.buyer = load.Buyer(self.plan)

    def on_stop(self) -> None:
        buyer = getattr(self, "buyer", None)
        if buyer is not None:
            buyer.close()

    @task
    def buy_until_stopped(self) -> None:
        # One task that loops, rather than one task per purchase: between tasks Locust may
        # kill a user outright, and with no think time the kill can land inside the next
        # purchase's query, leaving a committed purchase that was never counted. Here the
        # user stays "running"; a graceful stop (--stop-timeout) ends it between purchases.
        while self._state != LOCUST_STATE_STOPPING:
            self.purchase()
            gevent.sleep(THINK_TIME_S)

    def purchase(self) -> None:
        flow = self.plan.pick_flow(random)
        start = time.perf_counter()
        outcome, exc = self.buyer.purchase(flow, random)
        elapsed_ms = (time.perf_counter() - start) * 1000
        self.environment.events.request.fire(
            request_type=flow,
            name=f"{flow}:{outcome}",
            response_time=elapsed_ms,
            response_length=0,
            exception=exc,
            context={},
        )


_checked = False


@events.test_start.add_listener
def _arm_check(environment, **_kwargs) -> None:
    global _checked
    _checked = False


@events.init.add_listener
def _seed(environment, **_kwargs) -> None:
    # Only one process seeds: the master, or the single local runner.
    if isinstance(environment.runner, (MasterRunner, LocalRunner)):
        load.seed_if_empty(load.dsn_from_env())


@events.test_stop.add_listener
def _check_at_stop(environment, **_kwargs) -> None:
    # test_stop also fires in every worker (--processes, --worker): check on one node only.
    if not isinstance(environment.runner, (MasterRunner, LocalRunner)):
        return
    if isinstance(environment.runner, MasterRunner) and environment.runner.user_count:
        # A headless master fires test_stop before it tells the workers to quit; the
        # workers are still buying. The check waits for `quitting`, after they stopped.
        return
    _check(environment)


@events.quitting.add_listener
def _check_at_quit(environment, **_kwargs) -> None:
    if isinstance(environment.runner, MasterRunner):
        _check(environment)


def _check(environment) -> None:
    global _checked
    if _checked or not load.invariants_enabled():
        return
    _checked = True
    dsn = load.dsn_from_env()
    load.wait_for_load_sessions_to_end(dsn, timeout=(environment.stop_timeout or 0) + 30)
    violations = load.check(dsn)
    if violations:
        for v in violations:
            log.error("invariant violated: %s: %s", v.name, v.detail)
        environment.process_exit_code = 1
    log.info("invariants: %s", "violated" if violations else "hold")
