"""Autoscaling with the exact semantics of the Kubernetes HorizontalPodAutoscaler.

``hpa`` and its helpers reproduce the upstream controller (autoscaling/v2, ``behavior``
included) as pure functions on an injected clock; ``manifest`` reads HPA and Deployment YAML;
``simulator`` replays a load through one or more manifests on a virtual clock.
"""
