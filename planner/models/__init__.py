from .base import VersionedModel
from .mapping import FieldMapping, FieldType
from .projects import Connection, IntegrationProject, Membership, Role, System
from .steps import DataElement, Objective, PatternDecision, SuccessCriterion

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
]
