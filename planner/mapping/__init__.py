"""Data-mapping rules: a small safe pipeline language, compiled to polars.

rules      parse / check / format_rule, the transform catalogue (TRANSFORMS)
engine     compile_mapping(specs).validate(df, key): vectorised validation
reference  validate_records(...): the same semantics row by row (test oracle)
sql        a rule as SQL per dialect, where its meaning is the engine's

Nothing here imports Django, so it can be tested and benchmarked on its own. The names
below load on first use (PEP 562): checking a rule typed in the browser needs no polars.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.mapping.engine import (
        CompiledMapping,
        MappingSpec,
        ValidationReport,
        Violation,
        compile_mapping,
    )
    from planner.mapping.rules import TRANSFORMS, Pipeline, RuleError, check, format_rule, parse

_WHERE = {
    "CompiledMapping": "engine",
    "MappingSpec": "engine",
    "ValidationReport": "engine",
    "Violation": "engine",
    "compile_mapping": "engine",
    "TRANSFORMS": "rules",
    "Pipeline": "rules",
    "RuleError": "rules",
    "check": "rules",
    "format_rule": "rules",
    "parse": "rules",
}

__all__ = [  # noqa: RUF022 - the names of _WHERE
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'planner.mapping' has no attribute {name!r}")
    return getattr(importlib.import_module(f"planner.mapping.{module}"), name)
