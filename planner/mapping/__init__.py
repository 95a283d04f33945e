"""Data-mapping rules: a small safe pipeline language, compiled to polars.

rules      parse / check / format_rule, the transform catalogue (TRANSFORMS)
engine     compile_mapping(specs).validate(df, key): vectorised validation
reference  validate_records(...): the same semantics row by row (test oracle)

Nothing here imports Django, so it can be tested and benchmarked on its own.
"""

from planner.mapping.engine import (
    CompiledMapping,
    MappingSpec,
    ValidationReport,
    Violation,
    compile_mapping,
)
from planner.mapping.rules import TRANSFORMS, Pipeline, RuleError, check, format_rule, parse

__all__ = [
    "TRANSFORMS",
    "CompiledMapping",
    "MappingSpec",
    "Pipeline",
    "RuleError",
    "ValidationReport",
    "Violation",
    "check",
    "compile_mapping",
    "format_rule",
    "parse",
]
