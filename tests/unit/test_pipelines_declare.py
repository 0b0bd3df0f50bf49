"""Declaring pipelines: steps, chains, groups, ``>>``, rules, parameters, run keys, and each
refusal naming the problem."""

from __future__ import annotations

import datetime as dt

import pytest

import faena
from faena.brokers.memory import MemoryBroker
from faena.core.dependencies import RunState, TriggerRule
from faena.errors import ConfigError
from faena.pipelines import Pipeline, declared, param
from faena.pipelines.backfill import dates


@pytest.fixture
def app() -> faena.App:
    return faena.App(broker=MemoryBroker(), pools={"etl_pool": 2})


def _noop(app: faena.App):  # type: ignore[no-untyped-def]
    @app.task(queue="etl", pool="etl_pool", retries=2)
    def noop(day: str = "") -> None: ...

    return noop


def test_chain_groups_and_shift_build_the_dag(app: faena.App) -> None:
    noop = _noop(app)
    p = Pipeline(app, "etl")
    a, b, c, d, e = (p.step(n, noop) for n in "abcde")
    p.chain(a, [b, c], d)
    d >> e
    assert [s.name for s in d.upstreams] == ["b", "c"]
    assert [s.name for s in b.upstreams] == ["a"]
    assert e.upstreams == [d]
    f = p.step("f", noop)
    [a, f] >> p.step("g", noop)
    # topological, declaration order among the steps that are ready together
    assert [s.name for s in p.ordered()] == ["a", "f", "b", "c", "g", "d", "e"]
    assert declared(app) == {"etl": p}


def test_a_step_takes_the_tasks_options_and_overrides_them(app: faena.App) -> None:
    noop = _noop(app)
    p = Pipeline(app, "etl", key="{day}")
    p.step("a", noop, kwargs={"day": param("day")})
    p.step("b", noop, after=p.steps[0], pool_slots=2, retries=0, queue="dq")
    run = p.build({"day": "2026-11-27"})
    assert run.key == "etl:2026-11-27"
    first, second = run.steps
    assert (first.job.queue, first.job.pool, first.job.max_attempts) == ("etl", "etl_pool", 3)
    assert (second.job.queue, second.job.pool_slots, second.job.max_attempts) == ("dq", 2, 1)
    assert (
        first.job.kwargs_json == '{"day": "2026-11-27"}' or '"2026-11-27"' in first.job.kwargs_json
    )


def test_run_creates_once_per_key(app: faena.App) -> None:
    noop = _noop(app)
    p = Pipeline(app, "etl", key=lambda params: params["day"])
    p.step("a", noop)
    first = p.run(day="2026-11-27")
    again = p.run(day="2026-11-27")
    assert first.created and not again.created and first.id == again.id
    assert first.state is RunState.RUNNING
    other = p.run(run_key="etl:manual", day="2026-11-27")
    assert other.created and other.key == "etl:manual"


def test_refusals_name_the_problem(app: faena.App) -> None:
    noop = _noop(app)
    p = Pipeline(app, "etl", key="{day}")
    a = p.step("a", noop)
    b = p.step("b", noop, after=a)
    with pytest.raises(ConfigError, match="cycle"):
        a.after(b)
    with pytest.raises(ConfigError, match="has a step named 'a' already"):
        p.step("a", noop)
    with pytest.raises(ConfigError, match="trigger rule 'sometimes'"):
        p.step("c", noop, rule="sometimes")
    with pytest.raises(ConfigError, match="step name"):
        p.step("bad name", noop)
    with pytest.raises(ConfigError, match="no idempotency_key or delay"):
        p.step("d", noop, delay=5)
    with pytest.raises(ConfigError, match="unknown enqueue option"):
        p.step("e", noop, colour="red")
    with pytest.raises(ConfigError, match="needs parameter 'day'"):
        p.run()
    with pytest.raises(ConfigError, match="declared already"):
        Pipeline(app, "etl")
    with pytest.raises(ConfigError, match="pipeline name"):
        Pipeline(app, "9lives")
    q = Pipeline(app, "other")
    with pytest.raises(ConfigError, match="no steps"):
        q.run()
    q.step("x", noop, kwargs={"day": param("day")})
    with pytest.raises(ConfigError, match="needs run parameter 'day'"):
        q.run()
    with pytest.raises(ConfigError, match="belongs to pipeline etl"):
        q.steps[0].after(a)
    r = Pipeline(app, "results")
    r.step("y", noop, kwargs={"upstream": 1}, results=True)
    with pytest.raises(ConfigError, match="cannot have that name"):
        r.run()
    assert app.broker.list_jobs() == [] and app.broker.list_runs() == []  # nothing written
    assert TriggerRule("all_done") is TriggerRule.ALL_DONE


def test_backfill_dates_and_their_refusals() -> None:
    assert dates(dt.date(2026, 11, 29), dt.date(2026, 12, 1)) == [
        dt.date(2026, 11, 29),
        dt.date(2026, 11, 30),
        dt.date(2026, 12, 1),
    ]
    with pytest.raises(ConfigError, match="before its start"):
        dates(dt.date(2026, 12, 2), dt.date(2026, 12, 1))
    with pytest.raises(ConfigError, match="over the limit"):
        dates(dt.date(2000, 1, 1), dt.date(2026, 12, 1))
