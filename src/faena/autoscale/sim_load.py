"""Load specs for the autoscaling simulator: arrivals, service times, workers, metrics.

A load spec is a YAML mapping (documented in ``docs/autoscaling.md``)::

    seed: 7
    arrivals:
      - constant: {rate: 2, start: 0, end: 3600}     # tasks/s, evenly spaced
      - steps: [{at: 0, rate: 1}, {at: 600, rate: 4}]
      - burst: {at: 300, count: 500, over: 10}
      - trace: {path: trace.csv}                      # rows t_seconds,count
    service: {distribution: lognormal, mean: 8, sigma: 0.6}
    workers: {initial_replicas: 2, concurrency: 4, startup_delay: 30}
    metrics: {scrape_interval: 15, lag: 0, sync_period: 15}

Everything random is drawn from generators seeded with ``seed``, so a spec always yields the same
tasks and two manifests can be compared on exactly the same work.
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from faena.autoscale.errors import LoadSpecError
from faena.autoscale.quantity import QUANTITY_HINT, QuantityFormatError, milli

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: str | int | float, *, field_name: str = "duration") -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise LoadSpecError(field_name, value, "give seconds or a duration like 90s, 15m, 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if not text or match is None:
                raise LoadSpecError(
                    field_name, value, "give seconds or a duration like 90s, 15m, 1h30m"
                ) from None
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
    if seconds < 0 or not math.isfinite(seconds):
        raise LoadSpecError(field_name, value, "give a duration of zero or more")
    return seconds


@dataclass(frozen=True)
class Burst:
    at: float
    count: int
    over: float = 0.0


@dataclass(frozen=True)
class ServiceSpec:
    distribution: str = "constant"  # constant | exponential | lognormal
    mean: float = 5.0
    sigma: float = 0.5

    def draw(self, rng: random.Random) -> float:
        if self.distribution == "exponential":
            return rng.expovariate(1.0 / self.mean)
        if self.distribution == "lognormal":
            mu = math.log(self.mean) - self.sigma**2 / 2  # so the mean is `mean`
            return rng.lognormvariate(mu, self.sigma)
        return self.mean


@dataclass(frozen=True)
class WorkerSpec:
    initial_replicas: int = 1
    concurrency: int = 1
    startup_delay: float = 30.0
    shutdown_grace: float = 25.0
    cpu_request_milli: int = 500
    memory_request_milli: int = 512 * 2**20 * 1000
    cpu_idle_milli: int = 20
    cpu_per_task_milli: int = 100
    memory_base_milli: int = 200 * 2**20 * 1000
    memory_per_task_milli: int = 30 * 2**20 * 1000


@dataclass(frozen=True)
class MetricsSpec:
    scrape_interval: float = 15.0
    lag: float = 0.0
    sync_period: float = 15.0
    queue_metrics: tuple[str, ...] = ("celery_queue_length",)
    pods_report: str = "whole_queue"  # whole_queue | own_load
    external_series: str = "once"  # once | per_pod


@dataclass(frozen=True)
class LoadSpec:
    arrivals: tuple[float, ...]  # sorted arrival times
    bursts: tuple[Burst, ...] = ()
    service: ServiceSpec = field(default_factory=ServiceSpec)
    workers: WorkerSpec = field(default_factory=WorkerSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    seed: int = 0

    def tasks(self) -> list[tuple[float, float]]:
        """(arrival time, service time) for every task, drawn with the spec's seed."""
        rng = random.Random(self.seed)
        return [(t, self.service.draw(rng)) for t in self.arrivals]


# ------------------------------------------------------------------------------ parsing


def _num(obj: Mapping[str, Any], key: str, path: str, default: float | None = None) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise LoadSpecError(f"{path}.{key}", value, "give a number of zero or more")
    return float(value)


def _int(obj: Mapping[str, Any], key: str, path: str, default: int, low: int = 0) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise LoadSpecError(f"{path}.{key}", value, f"give a whole number >= {low}")
    return int(value)


def _qty(obj: Mapping[str, Any], key: str, path: str, default: int) -> int:
    if key not in obj:
        return default
    try:
        return milli(obj[key])
    except (QuantityFormatError, TypeError):
        raise LoadSpecError(f"{path}.{key}", obj[key], QUANTITY_HINT) from None


def _even(rate: float, start: float, end: float, rng: random.Random, poisson: bool) -> list[float]:
    if rate <= 0 or end <= start:
        return []
    times: list[float] = []
    if poisson:
        t = start + rng.expovariate(rate)
        while t < end:
            times.append(t)
            t += rng.expovariate(rate)
        return times
    n = math.floor((end - start) * rate + 1e-9)
    return [start + i / rate for i in range(n)]


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LoadSpecError(path, value, "write a mapping (key: value) here")
    return value


def _steps(raw: object, path: str, rng: random.Random, horizon: float) -> list[float]:
    if not isinstance(raw, list) or not raw:
        raise LoadSpecError(path, raw, "give a list of {at, rate} steps")
    steps = sorted(
        (
            _num(_mapping(s, f"{path}[{i}]"), "at", f"{path}[{i}]"),
            _num(_mapping(s, f"{path}[{i}]"), "rate", f"{path}[{i}]"),
        )
        for i, s in enumerate(raw)
    )
    times: list[float] = []
    for i, (at, rate) in enumerate(steps):
        end = steps[i + 1][0] if i + 1 < len(steps) else horizon
        times += _even(rate, at, end, rng, poisson=False)
    return times


def _trace(raw: Mapping[str, Any], path: str, base_dir: Path | None) -> list[float]:
    file = raw.get("path")
    if not isinstance(file, str):
        raise LoadSpecError(f"{path}.path", file, "give the CSV file (rows t_seconds,count)")
    p = Path(file) if base_dir is None or Path(file).is_absolute() else base_dir / file
    times: list[float] = []
    with p.open(newline="", encoding="utf-8") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].strip().startswith("#") or row[0].strip() == "t_seconds":
                continue
            try:
                t, count = float(row[0]), int(row[1])
            except (ValueError, IndexError):
                raise LoadSpecError(
                    f"{p}:{lineno}", ",".join(row), "write rows as t_seconds,count (e.g. 12.5,3)"
                ) from None
            times += [t] * count
    return times


def _arrivals(
    raw: object, rng: random.Random, horizon: float, base_dir: Path | None
) -> tuple[list[float], list[Burst]]:
    if not isinstance(raw, list) or not raw:
        raise LoadSpecError("arrivals", raw, "give a list of constant/steps/burst/trace sources")
    times: list[float] = []
    bursts: list[Burst] = []
    for i, item in enumerate(raw):
        path = f"arrivals[{i}]"
        source = _mapping(item, path)
        if len(source) != 1:
            raise LoadSpecError(path, item, "give exactly one of constant, steps, burst, trace")
        ((kind, body),) = source.items()
        if kind == "constant":
            b = _mapping(body, f"{path}.constant")
            times += _even(
                _num(b, "rate", f"{path}.constant"),
                _num(b, "start", f"{path}.constant", 0.0),
                _num(b, "end", f"{path}.constant", horizon),
                rng,
                poisson=bool(b.get("poisson", False)),
            )
        elif kind == "steps":
            times += _steps(body, f"{path}.steps", rng, horizon)
        elif kind == "burst":
            b = _mapping(body, f"{path}.burst")
            burst = Burst(
                _num(b, "at", f"{path}.burst"),
                _int(b, "count", f"{path}.burst", 0, low=1),
                _num(b, "over", f"{path}.burst", 0.0),
            )
            bursts.append(burst)
            step = burst.over / burst.count
            times += [burst.at + k * step for k in range(burst.count)]
        elif kind == "trace":
            times += _trace(_mapping(body, f"{path}.trace"), f"{path}.trace", base_dir)
        else:
            raise LoadSpecError(f"{path}.{kind}", body, "use constant, steps, burst or trace")
    return sorted(times), bursts


def _choice(obj: Mapping[str, Any], key: str, path: str, options: list[str], default: str) -> str:
    value = obj.get(key, default)
    if value not in options:
        raise LoadSpecError(f"{path}.{key}", value, f"use one of {options}")
    return str(value)


def parse_load_spec(
    doc: Mapping[str, Any],
    *,
    horizon: float = 3600.0,
    base_dir: Path | None = None,
    seed: int | None = None,
) -> LoadSpec:
    """Build a :class:`LoadSpec`; ``horizon`` ends open-ended sources (the run's duration);
    ``seed`` overrides the spec's own."""
    doc = _mapping(doc, "(load spec)")
    if seed is None:
        seed = _int(doc, "seed", "", 0)
    rng = random.Random(seed ^ 0x5EED)  # arrivals; service times use `seed` itself
    arrivals, bursts = _arrivals(doc.get("arrivals"), rng, horizon, base_dir)
    s = _mapping(doc.get("service"), "service")
    service = ServiceSpec(
        _choice(s, "distribution", "service", ["constant", "exponential", "lognormal"], "constant"),
        _num(s, "mean", "service", 5.0) or 1e-9,
        _num(s, "sigma", "service", 0.5),
    )
    w = _mapping(doc.get("workers"), "workers")
    d = WorkerSpec()
    workers = WorkerSpec(
        initial_replicas=_int(w, "initial_replicas", "workers", d.initial_replicas),
        concurrency=_int(w, "concurrency", "workers", d.concurrency, low=1),
        startup_delay=_num(w, "startup_delay", "workers", d.startup_delay),
        shutdown_grace=_num(w, "shutdown_grace", "workers", d.shutdown_grace),
        cpu_request_milli=_qty(w, "cpu_request", "workers", d.cpu_request_milli),
        memory_request_milli=_qty(w, "memory_request", "workers", d.memory_request_milli),
        cpu_idle_milli=_qty(w, "cpu_idle", "workers", d.cpu_idle_milli),
        cpu_per_task_milli=_qty(w, "cpu_per_task", "workers", d.cpu_per_task_milli),
        memory_base_milli=_qty(w, "memory_base", "workers", d.memory_base_milli),
        memory_per_task_milli=_qty(w, "memory_per_task", "workers", d.memory_per_task_milli),
    )
    m = _mapping(doc.get("metrics"), "metrics")
    names = m.get("queue_metric", list(MetricsSpec.queue_metrics))
    metrics = MetricsSpec(
        scrape_interval=_num(m, "scrape_interval", "metrics", 15.0) or 15.0,
        lag=_num(m, "lag", "metrics", 0.0),
        sync_period=_num(m, "sync_period", "metrics", 15.0) or 15.0,
        queue_metrics=tuple([names] if isinstance(names, str) else map(str, names)),
        pods_report=_choice(
            m, "pods_report", "metrics", ["whole_queue", "own_load"], "whole_queue"
        ),
        external_series=_choice(m, "external_series", "metrics", ["once", "per_pod"], "once"),
    )
    return LoadSpec(tuple(arrivals), tuple(bursts), service, workers, metrics, seed)


def load_load_spec(
    path: str | Path, *, horizon: float = 3600.0, seed: int | None = None
) -> LoadSpec:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LoadSpecError(
            "(yaml)", str(exc).splitlines()[0], "fix the YAML syntax", source=str(p)
        ) from exc
    try:
        return parse_load_spec(
            _mapping(doc, "(load spec)"), horizon=horizon, base_dir=p.parent, seed=seed
        )
    except LoadSpecError as exc:
        raise LoadSpecError(exc.field, exc.value, exc.fix, source=str(p)) from None
