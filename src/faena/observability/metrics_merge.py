"""One ``/metrics`` for the worker processes of ``faena worker --processes N``.

Each child worker serves its own metrics on a loopback port it picks and announces in a file
(``{"pid": ..., "port": ...}``). The supervisor serves ``--metrics-port``: at every scrape it
reads each child's ``/metrics`` and merges them into one exposition, so dashboards and alert
rules see one worker pod whatever N is.

How families merge:

* counters and histograms are summed over the children. A child that does not answer counts
  with the figures it last gave; when a child is replaced (another pid), the figures its
  predecessor last gave are kept and the new child's are added on top, so a total never goes
  down (what a child counted after its last scrape and before it died is lost);
* the gauges a worker process reports about itself (``faena_workers``,
  ``faena_queue_workers``, ``faena_worker_jobs_running``, ``faena_worker_concurrency`` and
  the process's memory and descriptors) are summed over the children that answered;
* every other gauge (queue lengths, pool slots: the broker's, the same from every child;
  ``python_info``) is taken from the first child that answered;
* ``*_created`` series are dropped: the sum of creation times means nothing.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

#: gauges that describe one worker process: the pod's value is the sum over its processes
SUMMED_GAUGES = frozenset(
    {
        "faena_workers",
        "faena_queue_workers",
        "faena_worker_jobs_running",
        "faena_worker_concurrency",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
    }
)
_CUMULATIVE = ("counter", "histogram", "summary")
#: seconds the supervisor waits for one child's answer
FETCH_TIMEOUT = 2.0

SampleKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, its labels (sorted)


@dataclass(frozen=True)
class Family:
    """One metric family as a child served it."""

    name: str
    documentation: str
    type: str
    samples: dict[SampleKey, float]


@dataclass(frozen=True)
class Scrape:
    """What child ``index`` answered: its pid and its families (None: it did not answer)."""

    index: int
    pid: int | None
    families: list[Family] | None


def parse(text: str) -> list[Family]:
    """The families of a Prometheus text exposition, without ``*_created`` series."""
    out: list[Family] = []
    cumulative: set[str] = set()
    for fam in text_string_to_metric_families(text):
        if fam.name.endswith("_created") and fam.name[: -len("_created")] in cumulative:
            continue  # the parser makes a gauge family of a counter's creation times
        if fam.type in _CUMULATIVE:
            cumulative.add(fam.name)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for s in fam.samples
            if not s.name.endswith("_created")
        }
        out.append(Family(fam.name, fam.documentation, fam.type, samples))
    return out


class ProcessMerger:
    """Merges the children's families scrape after scrape (it remembers what each child last
    gave, and what replaced children had counted)."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, list[Family]]] = {}  # index -> (pid, families)
        self._gone: set[tuple[int, int]] = set()  # (index, pid) of the replaced children
        # the cumulative families of replaced children, summed: name -> the family
        self._retired: dict[str, Family] = {}

    def merge(self, scrapes: Sequence[Scrape]) -> list[Family]:
        live: list[list[Family]] = []  # the families that count this time, child by child
        answered: list[list[Family]] = []
        for scrape in sorted(scrapes, key=lambda s: s.index):
            last = self._last.get(scrape.index)
            if (scrape.index, scrape.pid) in self._gone:
                scrape = Scrape(scrape.index, None, None)  # a late answer of a replaced one
            if scrape.families is not None and scrape.pid is not None:
                if last is not None and last[0] != scrape.pid:
                    self._retire(last[1])  # a new process in that place
                    self._gone.add((scrape.index, last[0]))
                self._last[scrape.index] = (scrape.pid, scrape.families)
                live.append(scrape.families)
                answered.append(scrape.families)
            elif last is not None:  # no answer: its counts stand as they were
                live.append([f for f in last[1] if f.type in _CUMULATIVE])
        return self._combine(live, answered)

    def _retire(self, families: list[Family]) -> None:
        for fam in families:
            if fam.type not in _CUMULATIVE:
                continue
            kept = self._retired.setdefault(
                fam.name, Family(fam.name, fam.documentation, fam.type, {})
            )
            for key, value in fam.samples.items():
                kept.samples[key] = kept.samples.get(key, 0.0) + value

    def _combine(self, live: list[list[Family]], answered: list[list[Family]]) -> list[Family]:
        order: dict[str, Family] = {}  # name -> the first family seen of that name
        for families in [*answered, *live, list(self._retired.values())]:
            for fam in families:
                order.setdefault(fam.name, fam)
        merged: list[Family] = []
        for name, first in order.items():
            samples: dict[SampleKey, float] = {}
            if first.type in _CUMULATIVE:
                for families in [*live, list(self._retired.values())]:
                    _add(samples, families, name)
            elif name in SUMMED_GAUGES:
                for families in answered:
                    _add(samples, families, name)
            else:
                for families in answered:
                    found = _find(families, name)
                    if found is not None:
                        samples = dict(found.samples)
                        break
            if samples:
                merged.append(Family(name, first.documentation, first.type, samples))
        return merged


def _find(families: list[Family], name: str) -> Family | None:
    return next((f for f in families if f.name == name), None)


def _add(into: dict[SampleKey, float], families: list[Family], name: str) -> None:
    fam = _find(families, name)
    if fam is not None:
        for key, value in fam.samples.items():
            into[key] = into.get(key, 0.0) + value


def to_metrics(families: Iterable[Family]) -> Iterator[Metric]:
    for fam in families:
        metric = Metric(fam.name, fam.documentation, fam.type)
        for (sample, labels), value in fam.samples.items():
            metric.add_sample(sample, dict(labels), value)
        yield metric


def announce(path: str | os.PathLike[str], port: int) -> None:
    """Tell the supervisor, through ``path``, where this child serves its metrics."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port}))
    os.replace(tmp, target)  # whole or not at all


Fetch = Callable[[int, str], "str | None"]  # (port, path) -> the body, or None


def fetch(port: int, path: str) -> str | None:
    """GET ``path`` from a child on loopback; the body if it answered 200, else None."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{path}", timeout=FETCH_TIMEOUT
        ) as response:
            body: bytes = response.read()
            return body.decode("utf-8")
    except (OSError, ValueError):  # URLError and HTTPError (a 503) are OSErrors
        return None


class ChildrenCollector(Collector):
    """The supervisor's collector: scrapes the children announced in ``files`` (one per
    child, in its place's order) and yields the merged families."""

    def __init__(self, files: Sequence[Path], get: Fetch = fetch) -> None:
        self.files = list(files)
        self._get = get
        self._merger = ProcessMerger()
        self._merging = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=min(len(self.files), 8) or 1)

    def _where(self, index: int) -> tuple[int, int] | None:
        try:
            data = json.loads(self.files[index].read_text())
            return int(data["pid"]), int(data["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # not announced yet (starting), or being replaced

    def _scrape(self, index: int) -> Scrape:
        where = self._where(index)
        if where is None:
            return Scrape(index, None, None)
        pid, port = where
        text = self._get(port, "/metrics")
        if text is None:
            return Scrape(index, pid, None)
        try:
            return Scrape(index, pid, parse(text))
        except ValueError:  # not an exposition (another process on that port)
            return Scrape(index, pid, None)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._merging:  # one scrape at a time: the children are read in order
            scrapes = list(self._pool.map(self._scrape, range(len(self.files))))
            merged = self._merger.merge(scrapes)
        yield from to_metrics(merged)

    def all_ready(self) -> bool:
        """Whether every child answers ``/readyz`` with 200."""

        def ready(index: int) -> bool:
            where = self._where(index)
            return where is not None and self._get(where[1], "/readyz") is not None

        return all(self._pool.map(ready, range(len(self.files))))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
