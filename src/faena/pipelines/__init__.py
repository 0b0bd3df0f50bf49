"""Pipelines: DAGs of faena tasks whose hand-offs happen in the broker's atomic steps."""

from faena.core.dependencies import RunState, TriggerRule
from faena.core.runs import RunRecord, StepRecord
from faena.pipelines.declare import Param, Pipeline, Step, declared, param

__all__ = [
    "Param",
    "Pipeline",
    "RunRecord",
    "RunState",
    "Step",
    "StepRecord",
    "TriggerRule",
    "declared",
    "param",
]
