"""One module per domain; the app label stays `planner` (no table was renamed)."""

from .alerts import Alert, AlertChannel
from .api import ApiToken
from .base import Comparator, VersionedModel, WindowUnit
from .deployment import DeploymentPlan, RollbackStep, RollbackTrigger
from .golive import GoLive
from .mapping import FieldMapping, FieldType
from .monitoring import Monitor
from .objectives import DataElement, Objective, SuccessCriterion
from .pattern import PatternDecision
from .practices import (
    BackfillPlan,
    ConnectionOwnership,
    ErrorStrategy,
    FailureClass,
    PersonalField,
    RolloutPhase,
    SecurityReview,
    SystemProfile,
)
from .projects import Connection, IntegrationProject, Membership, Role, System
from .reviews import CriterionResult, FeedbackItem, HealthReview, ReviewSchedule
from .runbook import RunbookExport
from .runs import RunKind, RunSchedule, RunStage, ValidationRun
from .signoff import ApproverRequirement, SignOff, SignOffStale
from .systems_config import SystemEndpoint
from .testing import TestCase, TestPlan
from .training import IncidentEntry, TrainingPlan

__all__ = [
    "SystemProfile",
    "RolloutPhase",
    "SecurityReview",
    "PersonalField",
    "FailureClass",
    "ErrorStrategy",
    "ConnectionOwnership",
    "BackfillPlan",
    "Alert",
    "AlertChannel",
    "ApiToken",
    "ApproverRequirement",
    "Comparator",
    "Connection",
    "CriterionResult",
    "DataElement",
    "DeploymentPlan",
    "FeedbackItem",
    "FieldMapping",
    "FieldType",
    "GoLive",
    "HealthReview",
    "IncidentEntry",
    "IntegrationProject",
    "Membership",
    "Monitor",
    "Objective",
    "PatternDecision",
    "ReviewSchedule",
    "Role",
    "RollbackStep",
    "RollbackTrigger",
    "RunKind",
    "RunSchedule",
    "RunStage",
    "RunbookExport",
    "SignOff",
    "SignOffStale",
    "SuccessCriterion",
    "System",
    "SystemEndpoint",
    "TestCase",
    "TestPlan",
    "TrainingPlan",
    "ValidationRun",
    "VersionedModel",
    "WindowUnit",
]
