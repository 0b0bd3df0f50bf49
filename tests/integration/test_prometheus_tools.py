"""promtool on what we ship: the alert rules (and their PrometheusRule copy), their unit tests,
and the exposition of a live `faena worker --metrics-port` (one process, and two merged)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.conftest import need
from tests.integration.test_metrics_support import (
    ROOT,
    free_port,
    http_get,
    start_worker,
    stop_worker,
    wait_for,
    write_app,
)

pytestmark = pytest.mark.prometheus
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
CRD = ROOT / "deploy" / "k8s" / "base" / "prometheusrule.yaml"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    need(shutil.which("promtool") is not None, "promtool is not installed (apt: prometheus)")
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_check_rules() -> None:
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    shipped = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert shipped >= 9  # the seed's, faena's, the schedule's and the pipeline's
    assert f"SUCCESS: {shipped} rules found" in r.stdout


def test_rule_unit_tests_pass() -> None:
    r = promtool("test", "rules", str(RULES_TEST))
    assert r.returncode == 0, r.stdout + r.stderr


def test_rule_unit_tests_catch_a_summed_broker_gauge(tmp_path: Path) -> None:
    """Negative control: the unit tests notice the seed's mistake of summing a gauge that
    every pod exports."""
    bad = RULES.read_text().replace(
        "max by (namespace, queue) (celery_queue_length)",
        "sum by (namespace, queue) (celery_queue_length)",
    )
    (tmp_path / "alerts.yml").write_text(bad)
    shutil.copy(RULES_TEST, tmp_path / "alerts_test.yml")
    r = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert r.returncode == 1
    assert "WorkerQueueBacklog" in r.stdout + r.stderr


def test_prometheusrule_crd_carries_the_same_rules(tmp_path: Path) -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["apiVersion"] == "monitoring.coreos.com/v1"
    assert crd["kind"] == "PrometheusRule"
    assert crd["metadata"]["labels"]["release"]
    assert crd["spec"] == yaml.safe_load(RULES.read_text())
    spec = tmp_path / "alerts.yml"  # promtool rejects the CRD wrapper: test its .spec
    spec.write_text(yaml.safe_dump(crd["spec"]))
    assert promtool("check", "rules", str(spec)).returncode == 0
    shutil.copy(RULES_TEST, tmp_path / "alerts_test.yml")
    r = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_servicemonitor_wiring() -> None:
    sm = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "servicemonitor.yaml").read_text())
    assert sm["kind"] == "ServiceMonitor"
    assert sm["metadata"]["labels"]["release"]
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"  # a Service port *name*
    assert endpoint["path"] == "/metrics"


@pytest.mark.slow
@pytest.mark.parametrize("processes", ["1", "2"])
def test_check_metrics_on_a_live_worker(tmp_path: Path, processes: str) -> None:
    """With --processes 2, the exposition the supervisor merges from its two processes."""
    need(shutil.which("promtool") is not None, "promtool is not installed (apt: prometheus)")
    app_path = write_app(tmp_path)
    broker = f"sqlite:///{tmp_path / 'faena.db'}"
    port = free_port()
    proc = start_worker(
        tmp_path, app_path, broker, "--queues", "etl_pool,dq", "--metrics-port", str(port),
        "--metrics-addr", "127.0.0.1", "--processes", processes, "--concurrency", "2",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: http_get(url + "/readyz")[0] == 200, 20, "the worker to be ready")
        except AssertionError as exc:
            out, err = stop_worker(proc)
            raise AssertionError(f"{exc}; exit code {proc.returncode}\n{out}\n{err}") from None
        enqueue = [
            str(ROOT / ".venv" / "bin" / "faena"),
            "enqueue",
            "--app",
            app_path,
            "--broker",
            broker,
        ]
        for args in (["etl.load", "--args", '["users"]'], ["dq.check", "--args", '["t", false]']):
            subprocess.run([*enqueue, *args], cwd=tmp_path, check=True, capture_output=True)

        def both_done() -> bool:
            text = http_get(url + "/metrics")[1]
            return 'status="succeeded"' in text and 'status="dead"' in text

        wait_for(both_done, 20, "both jobs to end")
        status, text = http_get(url + "/metrics")
        assert status == 200
        (tmp_path / "exposition.txt").write_text(text)
        r = promtool("check", "metrics", stdin=text)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        stop_worker(proc)
