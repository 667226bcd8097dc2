"""CEL rules and list-map keys: compiled once with the schema, checked on a request after defaulting.

`compile_rules` turns a node's `x-kubernetes-validations` into `celrules.Rule`s, reporting what cannot run here
(transition rules, functions the `cel` package lacks) as notes on the CRD, and what the API server refuses: a
rule whose estimated cost, times the times it can run in one object, exceeds the per-rule limit. The walk over
the schema adds those costs up for the per-CRD limit (`kratix.schema.structure`).

`check_rules` walks a defaulted, schema-checked request through the nodes that carry rules or
`x-kubernetes-list-map-keys`. Given a `CostBudget` (a schema whose rules could exceed the API server's runtime
limits), it charges each evaluation, before it runs, what it can cost on the request's values; an evaluation
over the per-call limit, or past the budget, is a violation and no further rule runs, as in the API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kratix.apiserver import celcost, celrules
from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath
from kratix.schema.defaulting import Node
from kratix.schema.violations import Violation, show

_BLOCKING_CODES = frozenset({"schema.type", "schema.required"})
OUT_OF_BUDGET = "validation failed due to running out of cost budget, no further validation rules will be run"


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[celrules.Rule, ...] = ()
    problems: list[Violation] = field(default_factory=list)
    costs: list[tuple[FieldPath, int]] = field(default_factory=list)  # each rule's cost over one object
    per_call: int = 0  # the costliest single evaluation among the rules


@dataclass
class CostBudget:
    """What the CEL evaluations for one request may still cost (the API server's runtime budget)."""

    remaining: int = celcost.RUNTIME_BUDGET
    exhausted: bool = False


def compile_rules(
    raw: object, path: FieldPath, *, shape: celcost.Shape | None = None, occurrences: int | None = 1
) -> CompiledRules:
    """The rules of one node (`raw` is its `x-kubernetes-validations`; `shape` the CEL view of the node, which
    can occur `occurrences` times in one object, None for unbounded) and the problems met compiling them."""
    if raw is None:
        return CompiledRules()
    if not isinstance(raw, list):
        return CompiledRules(problems=[Violation(path, "crd.schema", "must be a list of rules")])
    rules: list[celrules.Rule] = []
    problems: list[Violation] = []
    costs: list[tuple[FieldPath, int]] = []
    per_call = 0
    for index, entry in enumerate(raw):
        rule = celrules.compile_rule(entry, shape)
        if isinstance(rule, celrules.Rule):
            rules.append(rule)
        elif rule.kind == "transition":
            problems.append(Violation((*path, index), "crd.cel-transition", rule.message, Severity.INFO))
        elif rule.kind == "unsupported":
            problems.append(Violation((*path, index), "crd.cel-unsupported", rule.message, Severity.WARNING))
        else:
            problems.append(Violation((*path, index), "crd.cel", rule.message))
        for key, cost, name in (
            ("rule", rule.cost, "estimated rule cost"),
            ("messageExpression", rule.message_cost, "estimated messageExpression cost"),
        ):
            total = celcost.rule_cost(cost, shape, occurrences)
            costs.append(((*path, index, key), total))
            if isinstance(rule, celrules.Rule):  # only rules that run are charged at run time
                per_call = max(per_call, cost)
            if total > celcost.RULE_COST_LIMIT:
                problems.append(
                    Violation(
                        (*path, index, key),
                        "crd.cel-cost",
                        celcost.exceeds_message(name, total, celcost.RULE_COST_LIMIT),
                    )
                )
    return CompiledRules(tuple(rules), problems, costs, per_call)


def blocked_paths(found: Iterable[Violation]) -> frozenset[FieldPath]:
    """Nodes at or above a type or required-field error: a CEL rule there that cannot run says nothing new."""
    return frozenset(v.path[:end] for v in found if v.code in _BLOCKING_CODES for end in range(len(v.path) + 1))


def check_rules(
    value: Any, node: Node, path: FieldPath, blocked: frozenset[FieldPath], budget: CostBudget | None = None
) -> list[Violation]:
    found: list[Violation] = []
    if value is None:  # rules never run on a null (nullable) value
        return found
    for rule in node.rules:
        if budget is None:
            failure = celrules.evaluate(rule, value)
        elif budget.exhausted:
            break
        else:
            failure, refused = _evaluate_within(rule, value, budget)
            if refused is not None:
                found.append(Violation(path, "schema.cel-cost", refused))
                if failure is None:
                    break
        if failure is not None and not (failure.errored and path in blocked):
            found.append(Violation((*path, *rule.field_path), "schema.cel", failure.message))
    if node.map_keys is not None and isinstance(value, list):
        found += _check_map_keys(value, node.map_keys, path)
    if isinstance(value, dict):
        for key, item in value.items():
            child = node.child(key)
            if child is not None and child.walk:
                found += check_rules(item, child, (*path, key), blocked, budget)
    elif isinstance(value, list) and node.items is not None and node.items.walk:
        for index, item in enumerate(value):
            found += check_rules(item, node.items, (*path, index), blocked, budget)
    return found


def _evaluate_within(
    rule: celrules.Rule, value: Any, budget: CostBudget
) -> tuple[celrules.RuleFailure | None, str | None]:
    """(the rule's failure, why the budget stopped the checks) for one evaluation charged to `budget`."""
    refused = _charge(budget, celrules.cost_on(rule, value), rule)
    if refused is not None:
        return None, refused
    failure = celrules.evaluate(rule, value, message_expression=False)
    if failure is None or failure.errored or rule.message_program is None:
        return failure, None
    refused = _charge(budget, celrules.cost_on(rule, value, message=True), rule)
    if refused is not None:
        return failure, refused  # reported with `message`, and no further rule runs
    return celrules.RuleFailure(celrules.failure_message(rule, value), errored=False), None


def _charge(budget: CostBudget, cost: int, rule: celrules.Rule) -> str | None:
    if cost > celcost.PER_CALL_LIMIT:
        budget.exhausted = True
        return (
            f"no further validation rules will be run due to call cost exceeds limit for rule: {rule.source} "
            f"(on these values it can cost {cost:,}, over the limit of {celcost.PER_CALL_LIMIT:,} per call)"
        )
    if cost > budget.remaining:
        budget.exhausted = True
        return OUT_OF_BUDGET
    budget.remaining -= cost
    return None


def _check_map_keys(items: list[Any], keys: tuple[str, ...], path: FieldPath) -> list[Violation]:
    seen: set[str] = set()
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        identity = json.dumps([item.get(key) for key in keys], sort_keys=True, default=str)
        if identity in seen:
            shown = ", ".join(f"{key}={show(item.get(key))}" for key in keys)
            found.append(Violation((*path, index), "schema.duplicate", f"duplicate entry with {shown}"))
        seen.add(identity)
    return found
