"""faena's HPA loader refuses unknown fields at every level, as the API server's strict field
validation does: a misspelt field must not silently become its default."""

from __future__ import annotations

import pytest

from faena.autoscale.errors import ManifestError
from faena.autoscale.manifest import load_hpa

HPA = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: w
  labels: {app: w}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: w}
  minReplicas: 2
  maxReplicas: 10
"""


@pytest.mark.parametrize(
    ("old", "new", "field", "fix"),
    [
        ("  minReplicas: 2\n", "  minReplica: 2\n", "spec.minReplica",
         "did you mean 'minReplicas'"),
        ("kind: Horiz", "specs: {}\nkind: Horiz", "specs", "did you mean 'spec'"),
        ("  labels: {app: w}\n", "  label: {app: w}\n", "metadata.label", "'labels'"),
        ("kind: Deployment, name: w}", "kind: Deployment, nmae: w}", "spec.scaleTargetRef.nmae",
         "did you mean 'name'"),
        ("  maxReplicas: 10\n", "  maxReplicas: 10\n  behaviour: {}\n", "spec.behaviour",
         "did you mean 'behavior'"),
    ],
)  # fmt: skip
def test_unknown_field_is_named_with_the_fix(old: str, new: str, field: str, fix: str) -> None:
    text = HPA.replace(old, new)
    assert text != HPA
    with pytest.raises(ManifestError) as info:
        load_hpa(text, source="hpa.yaml")
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"hpa.yaml: {field}"), message
    assert "unknown field" in message and fix in message


def test_what_kubectl_and_kustomize_write_is_accepted() -> None:
    """status, managedFields and the other ObjectMeta fields of `kubectl get -o yaml`."""
    text = (
        HPA.replace(
            "  labels: {app: w}\n",
            "  labels: {app: w}\n  namespace: data\n  annotations: {a: b}\n  uid: x\n"
            "  resourceVersion: '1'\n  creationTimestamp: null\n  managedFields: []\n",
        )
        + "status: {currentReplicas: 2, desiredReplicas: 2}\n"
    )
    hpa = load_hpa(text)
    assert (hpa.name, hpa.namespace, hpa.spec.min_replicas) == ("w", "data", 2)
