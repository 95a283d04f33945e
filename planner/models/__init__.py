from .base import VersionedModel
from .projects import Connection, IntegrationProject, Membership, Role, System
from .steps import DataElement, Objective, PatternDecision, SuccessCriterion

__all__ = [
    "Connection",
    "DataElement",
    "IntegrationProject",
    "Membership",
    "Objective",
    "PatternDecision",
    "Role",
    "SuccessCriterion",
    "System",
    "VersionedModel",
]
