"""Manifest parsing: the seed's HPAs verbatim, API defaulting, quantities, clear errors."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from faena.autoscale.deployment import load_deployment, load_deployment_file
from faena.autoscale.errors import ManifestError
from faena.autoscale.manifest import load_hpa, load_hpa_file
from faena.autoscale.quantity import QuantityFormatError, format_milli, milli, parse_quantity
from faena.autoscale.spec import (
    ExternalMetric,
    MetricTarget,
    PodsMetric,
    PolicyType,
    ResourceMetric,
    ScalingPolicy,
    SelectPolicy,
    default_scale_down_rules,
    default_scale_up_rules,
)
from faena.errors import FaenaError

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parents[3]

# The seed's Camunda HPA, verbatim (seed/000_57dae521321f4181.txt).
SEED_CAMUNDA_HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: camunda-worker-hpa
  namespace: workflows
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: camunda-worker
  minReplicas: 1
  maxReplicas: 5
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 60
"""


def test_seed_airflow_hpa_parses_verbatim() -> None:
    hpa = load_hpa((DATA / "seed-airflow-hpa.yaml").read_text(encoding="utf-8"))
    assert (hpa.name, hpa.namespace) == ("airflow-worker-hpa", "data")
    spec = hpa.spec
    assert (spec.min_replicas, spec.max_replicas) == (2, 10)
    assert spec.scale_target.name == "airflow-worker"
    assert spec.metrics == (
        ResourceMetric("cpu", MetricTarget.utilization(70)),
        ResourceMetric("memory", MetricTarget.utilization(80)),
        PodsMetric("celery_queue_length", MetricTarget.average_value(10_000)),
    )
    assert spec.behavior is not None
    down, up = spec.behavior.scale_down, spec.behavior.scale_up
    assert down.stabilization_window_seconds == 300
    assert down.policies == (ScalingPolicy(PolicyType.PERCENT, 50, 60),)
    assert down.select_policy == SelectPolicy.MAX  # defaulted
    assert up.stabilization_window_seconds == 0
    assert up.policies == (
        ScalingPolicy(PolicyType.PERCENT, 100, 30),
        ScalingPolicy(PolicyType.PODS, 2, 30),
    )


def test_seed_camunda_hpa_parses_verbatim() -> None:
    assert (DATA / "seed-camunda-hpa.yaml").read_text(encoding="utf-8") == SEED_CAMUNDA_HPA
    hpa = load_hpa(SEED_CAMUNDA_HPA)
    assert hpa.name == "camunda-worker-hpa"
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 5)
    assert hpa.spec.metrics == (ResourceMetric("cpu", MetricTarget.utilization(60)),)
    assert hpa.spec.behavior is None  # legacy path


def test_deploy_manifests_parse() -> None:
    seed = load_hpa_file(REPO / "deploy" / "k8s" / "hpa-seed.yaml")
    assert seed == load_hpa((DATA / "seed-airflow-hpa.yaml").read_text(encoding="utf-8"))
    worker = load_hpa_file(REPO / "deploy" / "k8s" / "base" / "hpa-worker.yaml")
    queue = worker.spec.metrics[0]
    assert isinstance(queue, ExternalMetric)
    assert queue.name == "celery_queue_length"
    assert queue.target == MetricTarget.average_value(10_000)
    assert queue.selector is not None and queue.selector.match_labels == (("queue", "etl"),)
    assert worker.spec.behavior == seed.spec.behavior


def test_defaults_when_fields_are_omitted() -> None:
    hpa = load_hpa(
        """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: w}
spec:
  scaleTargetRef: {kind: Deployment, name: w}
  maxReplicas: 4
  behavior:
    scaleDown:
      selectPolicy: Min
"""
    )
    assert hpa.namespace == "default"
    assert hpa.spec.min_replicas == 1
    assert hpa.spec.metrics == (ResourceMetric("cpu", MetricTarget.utilization(80)),)
    behavior = hpa.spec.behavior
    assert behavior is not None
    assert behavior.scale_up == default_scale_up_rules()
    assert behavior.scale_up.policies == (
        ScalingPolicy(PolicyType.PODS, 4, 15),
        ScalingPolicy(PolicyType.PERCENT, 100, 15),
    )
    assert behavior.scale_down.select_policy == SelectPolicy.MIN
    assert behavior.scale_down.policies == default_scale_down_rules().policies
    # left unset by the API server; the controller uses its 300 s flag
    assert behavior.scale_down.stabilization_window_seconds is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", Fraction(10)),
        ("500m", Fraction(1, 2)),
        ("256Mi", Fraction(256 * 2**20)),
        ("1Gi", Fraction(2**30)),
        ("1.5", Fraction(3, 2)),
        ("2k", Fraction(2000)),
        ("1e3", Fraction(1000)),
        ("0.1", Fraction(1, 10)),
        (10, Fraction(10)),
        (0.5, Fraction(1, 2)),
    ],
)
def test_quantities_are_exact(text: str | int | float, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


def test_milli_values_round_up_like_upstream() -> None:
    assert milli("10") == 10_000
    assert milli("500m") == 500
    assert milli("256Mi") == 256 * 2**20 * 1000
    assert milli("1n") == 1  # MilliValue() rounds up to a whole milli-unit
    assert format_milli(10_000) == "10"
    assert format_milli(1500) == "1500m"


@pytest.mark.parametrize("bad", ["10x", "", "1.2.3", "Mi", "ten", "1 Gi"])
def test_bad_quantities_are_rejected(bad: str) -> None:
    with pytest.raises(QuantityFormatError, match="Kubernetes quantity"):
        parse_quantity(bad)


def _hpa_with(spec_tail: str) -> str:
    return (
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: w}\n"
        "spec:\n  scaleTargetRef: {kind: Deployment, name: w}\n" + spec_tail
    )


@pytest.mark.parametrize(
    ("tail", "field", "hint"),
    [
        (
            "  maxReplicas: 3\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: q}\n"
            "      target: {type: AverageValue, averageValue: 10x}\n",
            "spec.metrics[0].pods.target.averageValue",
            "500m",
        ),
        (
            "  maxReplicas: 3\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: q}\n"
            "      target: {type: Value, value: 10}\n",
            "spec.metrics[0].pods.target.type",
            "AverageValue",
        ),
        ("  minReplicas: 4\n  maxReplicas: 3\n", "spec.maxReplicas", ">= minReplicas"),
        ("  minReplicas: 0\n  maxReplicas: 3\n", "spec.minReplicas", "External"),
        ("  maxReplicas: 3\n  metrics:\n  - type: Bogus\n", "spec.metrics[0].type", "Resource"),
        (
            "  maxReplicas: 3\n  behavior:\n    scaleUp:\n      policies:\n"
            "      - {type: Pods, value: 4, periodSeconds: 3600}\n",
            "spec.behavior.scaleUp.policies[0].periodSeconds",
            "between 1 and 1800",
        ),
        (
            "  maxReplicas: 3\n  behavior:\n    scaleDown:\n"
            "      stabilizationWindowSeconds: 4000\n",
            "spec.behavior.scaleDown.stabilizationWindowSeconds",
            "between 0 and 3600",
        ),
        (
            "  maxReplicas: 3\n  behavior:\n    scaleUp:\n      selectPolicy: Largest\n",
            "spec.behavior.scaleUp.selectPolicy",
            "Max",
        ),
        (
            "  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n"
            "      target: {type: Utilization, averageUtilisation: 70}\n",
            "spec.metrics[0].resource.target.averageUtilisation",
            "unknown field",
        ),
    ],
)
def test_errors_name_field_value_and_fix(tail: str, field: str, hint: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_hpa(_hpa_with(tail), source="hpa.yaml")
    assert isinstance(info.value, FaenaError)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith("hpa.yaml: " + field)
    assert hint in message


def test_wrong_api_version_and_count_of_documents() -> None:
    with pytest.raises(ManifestError, match="autoscaling/v2"):
        load_hpa(SEED_CAMUNDA_HPA.replace("autoscaling/v2", "autoscaling/v1"))
    with pytest.raises(ManifestError, match="exactly one HorizontalPodAutoscaler"):
        load_hpa(SEED_CAMUNDA_HPA + "---\n" + SEED_CAMUNDA_HPA)
    with pytest.raises(ManifestError, match="YAML syntax"):
        load_hpa("spec: [unclosed")


def test_seed_deployment_requests() -> None:
    deployment = load_deployment_file(DATA / "seed-camunda-deployment.yaml")
    assert (deployment.name, deployment.replicas) == ("camunda-worker", 2)
    assert deployment.cpu_request_milli == 100
    assert deployment.memory_request_milli == 256 * 2**20 * 1000


def test_deployment_without_a_request_has_no_utilization_denominator() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  template:
    spec:
      containers:
      - name: a
        resources: {requests: {cpu: 250m}}
      - name: b
        resources: {requests: {cpu: "1", memory: 1Gi}}
"""
    deployment = load_deployment(text)
    assert deployment.replicas == 1
    assert deployment.cpu_request_milli == 1250
    assert deployment.memory_request_milli is None
    with pytest.raises(ManifestError, match=r"requests\.cpu"):
        load_deployment(text.replace("cpu: 250m", "cpu: lots"))
