from .base import VersionedModel
from .mapping import FieldMapping, FieldType
from .plan import (
    DeploymentPlan,
    IncidentEntry,
    Monitor,
    RollbackStep,
    RollbackTrigger,
    TestCase,
    TestPlan,
    TrainingPlan,
)
from .projects import Connection, IntegrationProject, Membership, Role, System
from .reviews import (
    Alert,
    AlertChannel,
    ApiToken,
    CriterionResult,
    FeedbackItem,
    GoLive,
    HealthReview,
    ReviewSchedule,
)
from .runbook import RunbookExport
from .runs import RunKind, RunSchedule, RunStage, ValidationRun
from .signoff import ApproverRequirement, SignOff, SignOffStale
from .steps import DataElement, Objective, PatternDecision, SuccessCriterion
from .systems_config import SystemEndpoint

__all__ = [
    "Connection",
    "DataElement",
    "FieldMapping",
    "FieldType",
    "IntegrationProject",
    "Membership",
    "Objective",
    "PatternDecision",
    "Role",
    "SuccessCriterion",
    "System",
    "VersionedModel",
    # steps 4 to 7, sign-offs, runbook exports
    "ApproverRequirement",
    "DeploymentPlan",
    "IncidentEntry",
    "Monitor",
    "RollbackStep",
    "RollbackTrigger",
    "RunbookExport",
    "SignOff",
    "SignOffStale",
    "TestCase",
    "TestPlan",
    "TrainingPlan",
    # validation runs and connection settings (issue 4)
    "RunKind",
    "RunSchedule",
    "RunStage",
    "SystemEndpoint",
    "ValidationRun",
    # go-live, health reviews, alerts, API tokens (issue 6)
    "Alert",
    "AlertChannel",
    "ApiToken",
    "CriterionResult",
    "FeedbackItem",
    "GoLive",
    "HealthReview",
    "ReviewSchedule",
]
