"""Read autoscaling/v2 HorizontalPodAutoscaler YAML into typed objects.

Parsing applies the API server's defaulting (``minReplicas`` 1, CPU 80 % when ``metrics`` is
empty, every unset ``behavior`` field of both directions) and its validation limits, so the
objects mean what a cluster would make of the same YAML. Quantities ("10", "500m", "256Mi")
become exact integer milli-units. Every problem raises :class:`ManifestError` naming the
field, the value and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from faena.autoscale.spec import (
    Behavior,
    ExternalMetric,
    HorizontalPodAutoscaler,
    HPASpec,
    LabelRequirement,
    LabelSelector,
    MetricSpec,
    MetricTarget,
    ObjectMetric,
    ObjectReference,
    PodsMetric,
    PolicyType,
    ResourceMetric,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    TargetType,
    default_scale_down_rules,
    default_scale_up_rules,
)
from faena.autoscale.yaml_fields import FieldReader, header, the_one

HPA_API_VERSION = "autoscaling/v2"
MAX_STABILIZATION_WINDOW_S = 3600
MAX_POLICY_PERIOD_S = 1800
#: the fields of an HPA object, its spec and its scaleTargetRef (autoscaling/v2): any other key
#: is a typo the API server would refuse (kubectl's strict field validation), not a default
HPA_FIELDS = {"apiVersion", "kind", "metadata", "spec", "status"}
SPEC_FIELDS = {"scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"}
TARGET_REF_FIELDS = {"apiVersion", "kind", "name"}
#: ObjectMeta: what `kubectl get -o yaml` or a kustomize build may write there
METADATA_FIELDS = {
    "name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "ownerReferences", "finalizers", "managedFields", "selfLink",
}  # fmt: skip


# ------------------------------------------------------------------------------ metrics


def _target(r: FieldReader, raw: object, path: str, allowed: list[str]) -> MetricTarget:
    obj = r.mapping(raw, path)
    if not obj:
        raise r.fail(path, raw, f"give a target with type one of {allowed}")
    r.only_keys(obj, path, {"type", "averageUtilization", "averageValue", "value"})
    kind = TargetType(r.choice(obj, "type", path, allowed))
    if kind == TargetType.UTILIZATION:
        return MetricTarget.utilization(r.integer(obj, "averageUtilization", path, low=1))
    if kind == TargetType.AVERAGE_VALUE:
        return MetricTarget.average_value(r.quantity_milli(obj, "averageValue", path))
    return MetricTarget.value(r.quantity_milli(obj, "value", path))


def _selector(r: FieldReader, raw: object, path: str) -> LabelSelector | None:
    if raw is None:
        return None
    obj = r.mapping(raw, path)
    r.only_keys(obj, path, {"matchLabels", "matchExpressions"})
    labels = r.mapping(obj.get("matchLabels"), f"{path}.matchLabels")
    expressions: list[LabelRequirement] = []
    raw_expr = obj.get("matchExpressions") or []
    if not isinstance(raw_expr, list):
        raise r.fail(f"{path}.matchExpressions", raw_expr, "give a list of {key, operator}")
    for i, item in enumerate(raw_expr):
        epath = f"{path}.matchExpressions[{i}]"
        expr = r.mapping(item, epath)
        operator = r.choice(expr, "operator", epath, ["In", "NotIn", "Exists", "DoesNotExist"])
        values = expr.get("values") or []
        expressions.append(
            LabelRequirement(r.string(expr, "key", epath), operator, tuple(map(str, values)))
        )
    return LabelSelector(tuple((str(k), str(v)) for k, v in labels.items()), tuple(expressions))


def _metric_identifier(r: FieldReader, raw: object, path: str) -> tuple[str, LabelSelector | None]:
    obj = r.mapping(raw, path)
    r.only_keys(obj, path, {"name", "selector"})
    return r.string(obj, "name", path), _selector(r, obj.get("selector"), f"{path}.selector")


def _resource_metric(r: FieldReader, body: Mapping[str, Any], path: str) -> MetricSpec:
    r.only_keys(body, path, {"name", "target"})
    target = _target(r, body.get("target"), f"{path}.target", ["Utilization", "AverageValue"])
    return ResourceMetric(r.string(body, "name", path), target)


def _pods_metric(r: FieldReader, body: Mapping[str, Any], path: str) -> MetricSpec:
    r.only_keys(body, path, {"metric", "target"})
    name, selector = _metric_identifier(r, body.get("metric"), f"{path}.metric")
    return PodsMetric(
        name, _target(r, body.get("target"), f"{path}.target", ["AverageValue"]), selector
    )


def _object_metric(r: FieldReader, body: Mapping[str, Any], path: str) -> MetricSpec:
    r.only_keys(body, path, {"metric", "target", "describedObject"})
    name, selector = _metric_identifier(r, body.get("metric"), f"{path}.metric")
    dpath = f"{path}.describedObject"
    described = r.mapping(body.get("describedObject"), dpath)
    ref = ObjectReference(
        r.string(described, "kind", dpath),
        r.string(described, "name", dpath),
        str(described.get("apiVersion", "")),
    )
    target = _target(r, body.get("target"), f"{path}.target", ["Value", "AverageValue"])
    return ObjectMetric(name, target, ref, selector)


def _external_metric(r: FieldReader, body: Mapping[str, Any], path: str) -> MetricSpec:
    r.only_keys(body, path, {"metric", "target"})
    name, selector = _metric_identifier(r, body.get("metric"), f"{path}.metric")
    target = _target(r, body.get("target"), f"{path}.target", ["Value", "AverageValue"])
    return ExternalMetric(name, target, selector)


_MetricParser = Callable[[FieldReader, Mapping[str, Any], str], MetricSpec]
_METRIC_PARSERS: dict[str, tuple[str, _MetricParser]] = {
    "Resource": ("resource", _resource_metric),
    "Pods": ("pods", _pods_metric),
    "Object": ("object", _object_metric),
    "External": ("external", _external_metric),
}


def _metric(r: FieldReader, raw: object, path: str) -> MetricSpec:
    obj = r.mapping(raw, path)
    kind = obj.get("type")
    if kind not in _METRIC_PARSERS:
        raise r.fail(
            f"{path}.type",
            kind,
            f"use one of {sorted(_METRIC_PARSERS)} (ContainerResource is not supported by faena)",
        )
    key, parser = _METRIC_PARSERS[str(kind)]
    r.only_keys(obj, path, {"type", key})
    return parser(r, r.mapping(obj.get(key), f"{path}.{key}"), f"{path}.{key}")


# ----------------------------------------------------------------------------- behavior


def _rules(r: FieldReader, raw: object, path: str, default: ScalingRules) -> ScalingRules:
    if raw is None:
        return default
    obj = r.mapping(raw, path)
    r.only_keys(obj, path, {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"})
    window = default.stabilization_window_seconds
    if obj.get("stabilizationWindowSeconds") is not None:
        window = r.integer(
            obj, "stabilizationWindowSeconds", path, low=0, high=MAX_STABILIZATION_WINDOW_S
        )
    select = default.select_policy
    if obj.get("selectPolicy") is not None:
        select = SelectPolicy(r.choice(obj, "selectPolicy", path, [s.value for s in SelectPolicy]))
    policies = default.policies
    raw_policies = obj.get("policies")
    if raw_policies:
        if not isinstance(raw_policies, list):
            raise r.fail(
                f"{path}.policies", raw_policies, "give a list of {type, value, periodSeconds}"
            )
        parsed: list[ScalingPolicy] = []
        for i, item in enumerate(raw_policies):
            ppath = f"{path}.policies[{i}]"
            policy = r.mapping(item, ppath)
            r.only_keys(policy, ppath, {"type", "value", "periodSeconds"})
            parsed.append(
                ScalingPolicy(
                    PolicyType(r.choice(policy, "type", ppath, ["Pods", "Percent"])),
                    r.integer(policy, "value", ppath, low=1),
                    r.integer(policy, "periodSeconds", ppath, low=1, high=MAX_POLICY_PERIOD_S),
                )
            )
        policies = tuple(parsed)
    tolerance = default.tolerance
    if obj.get("tolerance") is not None:
        tolerance_milli = r.quantity_milli(obj, "tolerance", path, allow_zero=True)
        tolerance = tolerance_milli / 1000
    return ScalingRules(select, policies, window, tolerance)


def _behavior(r: FieldReader, raw: object, path: str) -> Behavior | None:
    if raw is None:
        return None
    obj = r.mapping(raw, path)
    r.only_keys(obj, path, {"scaleUp", "scaleDown"})
    return Behavior(
        scale_up=_rules(r, obj.get("scaleUp"), f"{path}.scaleUp", default_scale_up_rules()),
        scale_down=_rules(r, obj.get("scaleDown"), f"{path}.scaleDown", default_scale_down_rules()),
    )


# ---------------------------------------------------------------------------------- HPA


def parse_hpa(doc: Mapping[str, Any], *, source: str | None = None) -> HorizontalPodAutoscaler:
    """One HorizontalPodAutoscaler document (already loaded from YAML)."""
    r = FieldReader(source)
    doc = r.mapping(doc, "(document)")
    header(r, doc, "HorizontalPodAutoscaler", [HPA_API_VERSION])
    r.only_keys(doc, "", HPA_FIELDS)
    meta = r.mapping(doc.get("metadata"), "metadata")
    r.only_keys(meta, "metadata", METADATA_FIELDS)
    name = r.string(meta, "name", "metadata")
    namespace = str(meta.get("namespace") or "default")
    spec = r.mapping(doc.get("spec"), "spec")
    r.only_keys(spec, "spec", SPEC_FIELDS)
    ref_raw = r.mapping(spec.get("scaleTargetRef"), "spec.scaleTargetRef")
    r.only_keys(ref_raw, "spec.scaleTargetRef", TARGET_REF_FIELDS)
    ref = ObjectReference(
        r.string(ref_raw, "kind", "spec.scaleTargetRef"),
        r.string(ref_raw, "name", "spec.scaleTargetRef"),
        str(ref_raw.get("apiVersion", "")),
    )
    raw_metrics = spec.get("metrics") or []
    if not isinstance(raw_metrics, list):
        raise r.fail("spec.metrics", raw_metrics, "give a list of metrics")
    metrics = tuple(_metric(r, m, f"spec.metrics[{i}]") for i, m in enumerate(raw_metrics))
    if not metrics:  # API default: 80 % average CPU utilization
        metrics = (ResourceMetric("cpu", MetricTarget.utilization(80)),)
    min_replicas = 1
    if spec.get("minReplicas") is not None:
        min_replicas = r.integer(spec, "minReplicas", "spec", low=0)
    if min_replicas == 0 and not any(isinstance(m, ObjectMetric | ExternalMetric) for m in metrics):
        raise r.fail(
            "spec.minReplicas",
            0,
            "0 needs at least one Object or External metric (and the HPAScaleToZero feature "
            "gate in a cluster); use 1, or KEDA for scale to zero",
        )
    max_replicas = r.integer(spec, "maxReplicas", "spec", low=1)
    if max_replicas < min_replicas:
        raise r.fail("spec.maxReplicas", max_replicas, f"must be >= minReplicas ({min_replicas})")
    behavior = _behavior(r, spec.get("behavior"), "spec.behavior")
    return HorizontalPodAutoscaler(
        name=name,
        namespace=namespace,
        spec=HPASpec(
            max_replicas=max_replicas,
            metrics=metrics,
            min_replicas=min_replicas,
            behavior=behavior,
            scale_target=ref,
        ),
    )


def load_hpa(text: str, *, source: str | None = None) -> HorizontalPodAutoscaler:
    """The single HorizontalPodAutoscaler in a YAML text (other kinds are skipped)."""
    return parse_hpa(the_one(text, "HorizontalPodAutoscaler", source), source=source)


def load_hpa_file(path: str | Path) -> HorizontalPodAutoscaler:
    p = Path(path)
    return load_hpa(p.read_text(encoding="utf-8"), source=str(p))
