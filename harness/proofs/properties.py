"""Running hypothesis inside the harness's own checks.

Every property and state machine the proofs run (the input and commission checks, the
lifecycle model) is run the same way: seeded from the run (``--seed``), no example
database (nothing left on disk), no deadline (a call to a busy server is not a bug), quiet
output, every health check off (the strategies draw from a database world, which
hypothesis cannot see), and the first failure only. Hypothesis keeps global state, so
:func:`exclusive` lets one run at a time in the process, however the check was called.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis.errors import HypothesisDeprecationWarning
from hypothesis.strategies import SearchStrategy

_LOCK = threading.Lock()


def quiet_settings(max_examples: int, **extra: Any) -> settings:
    """The settings every run shares, with ``max_examples`` and any ``extra`` (for a state
    machine, ``stateful_step_count``)."""
    return settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
        **extra,
    )


@contextmanager
def exclusive() -> Iterator[None]:
    """One hypothesis run at a time in this process."""
    with _LOCK, warnings.catch_warnings():
        # Other checks' threads draw random numbers while this one generates.
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        yield


def run_property(
    prop: Callable[..., None],
    *strategies: SearchStrategy[Any],
    seed_value: int,
    examples: int,
    **named: SearchStrategy[Any],
) -> None:
    """Run ``prop`` over ``examples`` drawn from the strategies (positional, named, or
    both, as :func:`hypothesis.given` takes them). The property's own exception (the
    check's CheckFailed, raised again for the shrunk example) propagates."""
    test = seed(seed_value)(quiet_settings(examples)(given(*strategies, **named)(prop)))
    with exclusive():
        test()
