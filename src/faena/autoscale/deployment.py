"""Read a Deployment's pod template requests: the denominators of the HPA's Utilization
targets (``faena simulate --deployment``, ``faena autoscale --deployment``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faena.autoscale.yaml_fields import FieldReader, header, the_one


@dataclass(frozen=True)
class ContainerRequests:
    name: str
    cpu_milli: int | None
    memory_milli: int | None


@dataclass(frozen=True)
class DeploymentResources:
    """A Deployment's pod template requests: the denominators of Utilization targets."""

    name: str
    replicas: int
    containers: tuple[ContainerRequests, ...]

    def _pod_sum(self, values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v or 0 for v in values)

    @property
    def cpu_request_milli(self) -> int | None:
        """Sum over containers; ``None`` if any container lacks a cpu request (the HPA then
        cannot compute cpu utilization)."""
        return self._pod_sum([c.cpu_milli for c in self.containers])

    @property
    def memory_request_milli(self) -> int | None:
        return self._pod_sum([c.memory_milli for c in self.containers])


def parse_deployment(doc: Mapping[str, Any], *, source: str | None = None) -> DeploymentResources:
    r = FieldReader(source)
    header(r, doc, "Deployment", ["apps/v1"])
    name = r.string(r.mapping(doc.get("metadata"), "metadata"), "name", "metadata")
    spec = r.mapping(doc.get("spec"), "spec")
    replicas = 1 if spec.get("replicas") is None else r.integer(spec, "replicas", "spec", low=0)
    pod_spec = r.mapping(
        r.mapping(spec.get("template"), "spec.template").get("spec"), "spec.template.spec"
    )
    raw_containers = pod_spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        raise r.fail("spec.template.spec.containers", raw_containers, "give at least one container")
    containers: list[ContainerRequests] = []
    for i, raw in enumerate(raw_containers):
        cpath = f"spec.template.spec.containers[{i}]"
        container = r.mapping(raw, cpath)
        requests = r.mapping(
            r.mapping(container.get("resources"), f"{cpath}.resources").get("requests"),
            f"{cpath}.resources.requests",
        )
        rpath = f"{cpath}.resources.requests"
        cpu = r.quantity_milli(requests, "cpu", rpath) if "cpu" in requests else None
        memory = r.quantity_milli(requests, "memory", rpath) if "memory" in requests else None
        containers.append(ContainerRequests(str(container.get("name", f"#{i}")), cpu, memory))
    return DeploymentResources(name, replicas, tuple(containers))


def load_deployment(text: str, *, source: str | None = None) -> DeploymentResources:
    """The single Deployment in a YAML text (other kinds are skipped)."""
    return parse_deployment(the_one(text, "Deployment", source), source=source)


def load_deployment_file(path: str | Path) -> DeploymentResources:
    p = Path(path)
    return load_deployment(p.read_text(encoding="utf-8"), source=str(p))
