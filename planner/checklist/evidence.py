"""Everything readiness needs about a project, loaded in a fixed number of queries.

`Evidence.load_many` loads several projects in the same queries as one (the portfolio
dashboard's verdicts); `Evidence.load` is that load for a single project, so both read the
same rows the same way. What else readiness reads (steps 4-7, the practices, sign-offs, the
backlog) is cached on the evidence object by its own module, each with a loader that fills
the cache of many evidence objects at once (`planner.checklist.readiness.prefetch`).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from planner.models import (
    Connection,
    DataElement,
    FieldMapping,
    IntegrationProject,
    Objective,
    PatternDecision,
    SuccessCriterion,
    System,
)

# Every one-per-project record readiness reads, loaded with the project in one query.
ONE_TO_ONE = ("objective", "pattern_decision", "test_plan", "deployment_plan", "training_plan")


def by_project(rows: Iterable) -> dict[int, list]:
    """Rows of several projects grouped by `project_id`, each group in the rows' order."""
    out: dict[int, list] = defaultdict(list)
    for row in rows:
        out[row.project_id].append(row)
    return out


def attach(row, name: str, related) -> None:
    """Give `row` its already-loaded related object `name` (a foreign key whose id the row
    holds): cached as Django's own loading caches it, without the assignment's checks, which
    cost more than the rest of reading a row when thousands are joined up."""
    type(row)._meta.get_field(name).set_cached_value(row, related)


@dataclass
class Evidence:
    project: IntegrationProject
    objective: Objective | None
    criteria: list[SuccessCriterion]
    data_elements: list[DataElement]
    systems: list[System]
    connections: list[Connection]
    decision: PatternDecision | None
    mappings: list[FieldMapping]

    @classmethod
    def load(cls, project: IntegrationProject) -> "Evidence":
        return cls.load_many([project])[project.pk]

    @classmethod
    def load_many(cls, projects: Iterable[IntegrationProject]) -> dict[int, "Evidence"]:
        """The evidence of each project, by project id: seven queries however many."""
        projects = list(projects)
        ids = [p.pk for p in projects]
        systems = list(System.objects.filter(project_id__in=ids))
        by_id = {s.pk: s for s in systems}
        connections = list(Connection.objects.filter(project_id__in=ids))
        for c in connections:
            # Attach the already-loaded systems instead of one query per connection.
            attach(c, "source", by_id[c.source_id])
            attach(c, "target", by_id[c.target_id])
        by_connection = {c.pk: c for c in connections}
        mappings = list(FieldMapping.objects.filter(project_id__in=ids))
        for m in mappings:
            attach(m, "connection", by_connection[m.connection_id])
        elements = list(DataElement.objects.filter(project_id__in=ids))
        for e in elements:
            attach(e, "source_of_truth", by_id.get(e.source_of_truth_id))
        # The one-per-project records of every step in one query; steps 4-7 take theirs in
        # planner.checklist.delivery.
        one_to_one = {
            p.pk: p
            for p in IntegrationProject.objects.select_related(*ONE_TO_ONE).filter(pk__in=ids)
        }
        criteria = by_project(SuccessCriterion.objects.filter(project_id__in=ids))
        systems_of, connections_of = by_project(systems), by_project(connections)
        mappings_of, elements_of = by_project(mappings), by_project(elements)
        out = {}
        for p in projects:
            records = one_to_one[p.pk]
            ev = out[p.pk] = cls(
                project=p,
                objective=getattr(records, "objective", None),
                criteria=criteria[p.pk],
                data_elements=elements_of[p.pk],
                systems=systems_of[p.pk],
                connections=connections_of[p.pk],
                decision=getattr(records, "pattern_decision", None),
                mappings=mappings_of[p.pk],
            )
            ev.__dict__["_one_to_one"] = records
        return out

    @property
    def connections_by_id(self) -> dict[int, Connection]:
        return {c.pk: c for c in self.connections}

    def mappings_of(self, connection_id: int) -> list[FieldMapping]:
        return [m for m in self.mappings if m.connection_id == connection_id]
