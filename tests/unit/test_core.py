"""The pure core: retry policy, payloads, admission, transitions, outcomes."""

from __future__ import annotations

import random
import time

import pytest

from faena.brokers.url import open_broker
from faena.core import lifecycle, outcomes
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, NewJob
from faena.core.lease import check_lease
from faena.core.payload import check_args, encode
from faena.core.pools import Admission, Candidate, check_pools
from faena.core.retry import RetryPolicy
from faena.core.states import JobState, check_transition
from faena.errors import (
    BrokerURLError,
    ConfigError,
    InvalidTransitionError,
    PayloadError,
)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(retries=10, backoff_base=1.0, backoff_cap=30.0)
    assert [policy.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays) and max(delays) > 3 and min(delays) < 1
    assert RetryPolicy(jitter=False, backoff_base=2).delay(2) == 4
    assert policy.ceiling(500) == 30


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="retries must be >= 0"):
        RetryPolicy(retries=-1)
    with pytest.raises(ConfigError, match="lease must be at least"):
        check_lease(0.1)


def test_payload_is_json_only_and_bounded() -> None:
    assert encode("args", [1, "é", {"a": None}]) == '[1,"é",{"a":null}]'
    with pytest.raises(PayloadError, match=r"JSON-serializable.*object"):
        encode("args", [object()])
    with pytest.raises(PayloadError, match=r"NaN|JSON"):
        encode("args", [float("nan")])
    with pytest.raises(PayloadError, match="over the limit of 10 bytes"):
        encode("kwargs", {"k": "x" * 20}, max_bytes=10)
    with pytest.raises(PayloadError, match="kwargs must be a JSON object"):
        check_args([], [])
    with pytest.raises(PayloadError, match="keys must be strings"):
        check_args([], {1: 2})


def test_admission_skips_full_pools_and_stops_at_parallelism() -> None:
    adm = Admission({"a": 1, "b": 2}, parallelism_free=2, limit=5)
    cands = [
        Candidate("1", "a", 1),
        Candidate("2", "a", 1),
        Candidate("3", "b", 2),
        Candidate("4", "b", 1),
    ]
    assert adm.admit(cands) == ["1", "3"]
    assert adm.blocked
    adm = Admission({"a": 3}, parallelism_free=None, limit=1)
    assert adm.admit([Candidate("1", "a", 1), Candidate("2", "a", 1)]) == ["1"]


def test_pool_config_is_checked() -> None:
    assert check_pools({"etl_pool": 24}) == {"etl_pool": 24}
    with pytest.raises(ConfigError, match="size must be an integer >= 0"):
        check_pools({"etl_pool": -1})
    with pytest.raises(ConfigError, match="not valid"):
        check_pools({"bad name!": 1})


def test_transition_table() -> None:
    check_transition("j", JobState.QUEUED, JobState.RUNNING)
    with pytest.raises(InvalidTransitionError, match="succeeded; it cannot become running"):
        check_transition("j", JobState.SUCCEEDED, JobState.RUNNING)


def test_lifecycle_and_outcomes() -> None:
    clock = ManualClock()
    job = lifecycle.create(NewJob(task="t", queue="q", max_attempts=2), clock.now())
    running = lifecycle.claim(job, "w", clock.now(), 30)
    err = ErrorInfo("E", "m")
    out = outcomes.after_failure(
        running,
        err,
        retryable=True,
        policy=RetryPolicy(retries=1),
        now=clock.now(),
        rng=random.Random(1),
    )
    assert out.state is JobState.FAILED and out.retry_at is not None
    again = lifecycle.claim(lifecycle.finish(running, out, clock.now()), "w", clock.now(), 30)
    last = outcomes.after_failure(
        again, err, retryable=True, policy=RetryPolicy(retries=1), now=clock.now()
    )
    assert last.state is JobState.DEAD
    not_retryable = outcomes.after_failure(
        running, err, retryable=False, policy=RetryPolicy(), now=0
    )
    assert not_retryable.state is JobState.DEAD
    assert lifecycle.release(running, 0.0).tries == 0


def test_manual_clock_never_goes_back() -> None:
    clock = ManualClock(10)
    clock.advance(5)
    assert clock.now() == 15
    with pytest.raises(ValueError):
        clock.advance(-1)


# --- bad input at the edges -------------------------------------------------------------


def test_bad_broker_urls() -> None:
    with pytest.raises(BrokerURLError, match="unknown scheme 'mysql'"):
        open_broker("mysql://x/y")
    with pytest.raises(BrokerURLError, match="must name a file"):
        open_broker("sqlite:///:memory:")
    with pytest.raises(BrokerURLError, match="sync='sometimes'"):
        open_broker("sqlite:///x.db?sync=sometimes")


def test_the_cli_lists_every_command_its_modules_define() -> None:
    """Commands load lazily from a name -> module table: it must name every command each
    module exports, and nothing else."""
    from faena.cli.main import COMMAND_MODULES, COMMANDS, module_commands

    defined = {name: module for module in COMMAND_MODULES for name in module_commands(module)}
    assert defined == COMMANDS


def test_the_help_listing_says_what_each_command_says_of_itself() -> None:
    """``faena --help`` lists the commands from a table of summaries (their modules are not
    imported): each must give the short help the command itself gives, at any width."""
    import click

    from faena.cli.main import COMMANDS, SUMMARIES, module_commands

    assert set(SUMMARIES) == set(COMMANDS)
    for name, module in COMMANDS.items():
        real = module_commands(module)[name]
        listed = click.Command(name, help=SUMMARIES[name])
        for width in (30, 45, 80, 400):
            assert listed.get_short_help_str(width) == real.get_short_help_str(width), name


def test_job_ids_are_uuid7_in_time_order() -> None:
    import uuid

    from faena.core.job import new_job_id, new_job_ids

    before = time.time_ns() // 1_000_000
    ids = [new_job_id() for _ in range(500)]
    ids += new_job_ids(500)  # a bulk enqueue's ids, from one read of the random source
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert len(text) == 32 and u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= int(text[:12], 16) <= after
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_config_errors_are_config_errors_and_value_errors() -> None:
    from faena.brokers.sqlite.store import Store
    from faena.observability import logs

    with pytest.raises(BrokerURLError, match=r"sync='bogus'; use \?sync=enqueue"):
        Store("never-created.db", sync="bogus")  # refused before the file is touched
    with pytest.raises(ConfigError, match="log format must be auto, json or console"):
        logs.configure("yaml")
    assert issubclass(ConfigError, ValueError)  # code that caught ValueError still does
