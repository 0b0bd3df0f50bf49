"""The broker's SQL, read from ``queries.sql`` and rendered for one schema."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from faena.brokers.literals import fill_sql
from faena.brokers.postgres.config import LOCK_CLASS_CLAIM, LOCK_CLASS_FOLD, PgConfig
from faena.brokers.postgres.database import Prepared

_MARK = "-- name:"
#: the statements run as :class:`Prepared` (``$n`` parameters, sent as text): the hot ones
PREPARED = frozenset({"exchange", "enqueue", "insert_job"})


def read_sections(text: str) -> dict[str, str]:
    """``-- name: X`` sections of a .sql file, comments before the first one dropped."""
    sections: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(_MARK):
            if name is not None:
                sections[name] = "\n".join(lines).strip()
            name, lines = line[len(_MARK) :].strip(), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = "\n".join(lines).strip()
    return {k: v.rstrip(";") for k, v in sections.items()}


def render(text: str, config: PgConfig) -> str:
    """Fill the placeholders of a .sql text for one schema."""
    return (
        text.replace("@schema@", config.quoted_schema)
        .replace("@channel@", config.channel)
        .replace("@claim_lock@", f"{LOCK_CLASS_CLAIM}, {config.lock_key}")
        .replace("@fold_lock@", f"{LOCK_CLASS_FOLD}, {config.lock_key}")
    )


@dataclass(frozen=True, slots=True)
class Queries:
    exchange: Prepared
    reap: str
    release: str
    heartbeat: str
    enqueue: Prepared
    insert_job: Prepared
    copy_jobs: str
    jobs_by_ids: str
    get: str
    get_for_update: str
    key_holder: str
    manual_retry: str
    cancel_pending: str
    cancel_running: str
    bulk_retry_batch: str
    bulk_cancel_batch: str
    notify: str
    pool_names: str
    set_pool: str
    set_parallelism: str
    get_parallelism: str
    next_run_at: str
    pause_queue: str
    resume_queue: str
    paused_queues: str
    report_worker: str
    list_workers: str
    prune_workers: str
    report_autoscaler: str
    list_autoscalers: str
    prune_autoscalers: str
    queue_stats: str
    pool_stats: str
    count_by_state: str
    prune: str
    overflowing: str
    bury: str
    prune_minutes: str
    fold_minutes: str
    fold_counts: str

    @classmethod
    def load(cls, config: PgConfig) -> Queries:
        text = (resources.files("faena.brokers.postgres") / "queries.sql").read_text("utf-8")
        # the state sets are filled in here, not in render(): render() also reads the
        # migrations, whose text is history and must not follow the sets
        sections = read_sections(fill_sql(text))
        sql: dict[str, Any] = {k: render(v, config) for k, v in sections.items()}
        for name in PREPARED:
            sql[name] = Prepared(f"faena_{name}".encode(), sql[name].encode())
        return cls(**sql)
