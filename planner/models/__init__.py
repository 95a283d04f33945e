"""One module per domain; the app label stays `planner` (no table was renamed)."""

from .accounts import Invitation
from .aftercare import ChangelogEntry, Improvement
from .alerts import Alert, AlertChannel
from .api import ApiToken
from .base import Comparator, MetricKey, VersionedModel, WindowUnit
from .deployment import DeploymentPlan, RollbackStep, RollbackTrigger
from .freshness import CanaryProbe, FreshnessSettings, FreshnessState
from .golive import GoLive, GoLiveRevert
from .lifecycle import ProjectDeletion
from .mapping import FieldMapping, FieldType, ValueMeaning
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
from .runs import RunKind, RunPartition, RunSchedule, RunStage, ValidationRun
from .signoff import ApproverRequirement, ProjectStanding, SignOff, SignOffStale, StepContent
from .slo import SliPoint
from .systems_config import SystemEndpoint
from .teamwork import (
    Assignment,
    Comment,
    Notification,
    NotificationKind,
    NotificationPreference,
    ReminderSent,
    WorkKind,
)
from .templates import ProjectTemplate
from .testing import TestCase, TestPlan
from .training import IncidentEntry, TrainingPlan

__all__ = [
    "Assignment",
    "Comment",
    "Notification",
    "NotificationKind",
    "NotificationPreference",
    "ReminderSent",
    "WorkKind",
    "Invitation",
    "ProjectDeletion",
    "ProjectTemplate",
    "ChangelogEntry",
    "Improvement",
    "CanaryProbe",
    "FreshnessSettings",
    "FreshnessState",
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
    "MetricKey",
    "Connection",
    "CriterionResult",
    "DataElement",
    "DeploymentPlan",
    "FeedbackItem",
    "FieldMapping",
    "FieldType",
    "ValueMeaning",
    "GoLive",
    "GoLiveRevert",
    "HealthReview",
    "IncidentEntry",
    "IntegrationProject",
    "Membership",
    "Monitor",
    "Objective",
    "PatternDecision",
    "ReviewSchedule",
    "Role",
    "ProjectStanding",
    "RollbackStep",
    "RollbackTrigger",
    "RunKind",
    "RunSchedule",
    "RunPartition",
    "RunStage",
    "RunbookExport",
    "SignOff",
    "SliPoint",
    "SignOffStale",
    "StepContent",
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
