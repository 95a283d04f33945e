"""Readiness checks over mapping rows (any objects with FieldMapping's attributes)."""

from functools import lru_cache

from .rules import RuleError, check, parse


@lru_cache(maxsize=4096)
def rule_errors(rule: str, target_type: str = "") -> tuple[RuleError, ...]:
    """Problems of one rule text; cached because readiness checks every row on every page."""
    if not rule.strip():
        return ()
    return tuple(check(rule, target_type=target_type or None))


@lru_cache(maxsize=4096)
def has_length_check(rule: str, max_length: int) -> bool:
    """True when the rule enforces at most max_length characters: max_length(n) or a substr
    that keeps at most n characters, with n <= max_length."""
    try:
        pipeline = parse(rule)
    except RuleError:
        return False
    for call in pipeline.steps:
        limit = None
        if call.name == "max_length" and call.args:
            limit = call.args[0]
        elif call.name == "substr" and len(call.args) == 2:
            limit = call.args[1]
        if isinstance(limit, int) and limit <= max_length:
            return True
    return False


def duplicate_targets(rows: list) -> dict[int, str]:
    """pk of each row whose target field repeats an earlier row's -> the earlier source."""
    seen: dict[str, object] = {}
    out = {}
    for row in rows:
        name = row.target_field.strip().lower()
        if name in seen:
            out[row.pk] = str(seen[name])
        else:
            seen[name] = row
    return out


def row_problems(row) -> list[str]:
    """Every readiness problem of one mapping row, as short sentences."""
    problems = []
    if not row.source_type or not row.target_type:
        problems.append("source and target types are needed")
    if not row.rule.strip():
        problems.append("state the transformation ('identity' if none)")
    elif errors := rule_errors(row.rule, row.target_type):
        problems.append(f"rule error: {errors[0]}")
    if not row.null_rule:
        problems.append("choose a null rule")
    elif row.null_rule == "default" and row.null_default == "" and row.required:
        problems.append("give the default value")
    if row.direction == "bidirectional" and not row.conflict_rule:
        problems.append("bidirectional: choose a conflict rule")
    if row.max_length and not has_length_check(row.rule, row.max_length):
        problems.append(f"add max_length({row.max_length}) or a substr to the rule")
    return problems
