"""``faena schedules APP``: the app's declared schedules with what the store keeps of each;
and the ``--no-scheduler`` option and scheduler thread of ``worker``, ``server`` and ``up``."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from faena.app import App
from faena.cli.options import broker_option, existing_app, json_option
from faena.cli.render import ago, emit_json, table

if TYPE_CHECKING:  # `faena worker` imports this module: the scheduler's load with a schedule
    from faena.brokers.protocol import ScheduleState
    from faena.schedules.spec import Schedule

F = TypeVar("F", bound=Callable[..., Any])
#: set by --no-scheduler, so the worker processes a command starts inherit it
NO_SCHEDULER_ENV = "FAENA_NO_SCHEDULER"


def no_scheduler_option(f: F) -> F:
    return click.option(
        "--no-scheduler",
        is_flag=True,
        envvar=NO_SCHEDULER_ENV,
        show_envvar=True,
        help="Do not run the app's schedules in this process (nor in the worker processes "
        "it starts). Every process that runs them may fire a tick; the store makes each fire "
        "once, so this is only for keeping the schedules in one place.",
    )(f)


@contextlib.contextmanager
def scheduler_running(app: App, role: str, *, disabled: bool) -> Iterator[None]:
    """Run ``app``'s schedules in a thread while the block runs (unless ``disabled``; then
    the worker processes started inside inherit ``FAENA_NO_SCHEDULER=1``)."""
    if disabled:
        os.environ[NO_SCHEDULER_ENV] = "1"
    thread = None
    if app.schedules and not disabled:  # else the scheduler's modules are never loaded
        from faena.schedules.runner import start_scheduler

        thread = start_scheduler(app, f"{role} {socket.gethostname()}:{os.getpid()}")
    try:
        yield
    finally:
        if thread is not None:
            thread.stop()


def _when(t: float | None, schedule: Schedule) -> str:
    if t is None:
        return ""
    from zoneinfo import ZoneInfo

    from faena.schedules.triggers import Cron

    zone = ZoneInfo(schedule.trigger.tz) if isinstance(schedule.trigger, Cron) else None
    return datetime.fromtimestamp(t, zone).isoformat(timespec="seconds")


def rows(app: App, states: dict[str, ScheduleState], now: float) -> list[dict[str, Any]]:
    out = []
    for name in sorted(app.schedules):
        s = app.schedules[name]
        expression, tz = s.trigger.describe()
        state = states.get(name)
        nxt = s.trigger.after(now)
        out.append(
            {
                "name": name,
                "expression": expression,
                "tz": tz,
                "next_tick": nxt,
                "next_tick_local": _when(nxt, s),
                "last_tick": state.last_tick if state else None,
                "last_tick_local": _when(state.last_tick, s) if state else None,
                "fired_at": state.fired_at if state else None,
                "missed": s.missed.value
                + (f" (max {s.catch_up_max})" if s.catch_up_max > 1 else ""),
                "target": s.target.describe(),
            }
        )
    return out


@click.command()
@click.argument("app_path", metavar="APP", envvar="FAENA_APP")
@broker_option
@json_option
def schedules(app_path: str, broker: str | None, as_json: bool) -> None:
    """List APP's schedules: expression, time zone, next tick, the last tick the store
    recorded (fired, or armed) and when, the missed-tick policy and what each fires."""
    app = existing_app(app_path, broker)
    states = {s.name: s for s in app.broker.schedule_states()} if app.schedules else {}
    found = rows(app, states, app.clock.now())
    if as_json:
        emit_json(found)
        return
    if not found:
        click.echo(f"{app_path} declares no schedules (see docs/schedules.md)")
        return
    table(
        ["NAME", "EXPRESSION", "TZ", "NEXT TICK", "LAST TICK", "RECORDED", "MISSED", "TARGET"],
        [
            [
                r["name"],
                r["expression"],
                r["tz"],
                r["next_tick_local"],
                r["last_tick_local"] or "never",
                ago(r["fired_at"]),
                r["missed"],
                r["target"],
            ]
            for r in found
        ],
    )


commands = [schedules]
