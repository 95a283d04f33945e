"""A stored mapping row as the engine's MappingSpec: the one place that conversion happens.

Takes any object with FieldMapping's attributes, so this package stays free of Django.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import MappingSpec


def spec_of(row) -> MappingSpec:
    # The engine (polars) loads when a row is first compiled, not with the forms importing this.
    from .engine import MappingSpec

    # Rows not yet complete still run: unset types read as text, an unset null rule as skip.
    return MappingSpec(
        source_field=row.source_field,
        target_field=row.target_field,
        source_type=row.source_type or "string",
        target_type=row.target_type or "string",
        max_length=row.max_length,
        required=row.required,
        null_rule=row.null_rule or "skip",
        null_default=row.null_default,
        rule=row.rule,
    )
