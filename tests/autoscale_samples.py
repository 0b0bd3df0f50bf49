"""An HPA and a load the simulator's unit tests and its file-writing tests share."""

QUEUE_HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: w}
spec:
  scaleTargetRef: {kind: Deployment, name: w}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: External
    external:
      metric: {name: celery_queue_length}
      target: {type: AverageValue, averageValue: "10"}
"""

# One ready worker (concurrency 1) takes the first of 51 jobs arriving at t=1 and never
# finishes it; new pods never become ready inside the run. So the queue is 50 from t=1 on
# and the External metric is 50 at every scrape from t=15 (scrape and sync every 15 s).
STUCK_LOAD = {
    "arrivals": [{"burst": {"at": 1, "count": 51}}],
    "service": {"distribution": "constant", "mean": 100000},
    "workers": {"initial_replicas": 1, "concurrency": 1, "startup_delay": 100000},
}
