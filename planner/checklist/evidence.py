"""Everything readiness needs about a project, loaded in a fixed number of queries."""

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
        systems = list(System.objects.filter(project=project))
        by_id = {s.pk: s for s in systems}
        connections = list(Connection.objects.filter(project=project))
        for c in connections:
            # Attach the already-loaded systems instead of one query per connection.
            c.source, c.target = by_id[c.source_id], by_id[c.target_id]
        by_connection = {c.pk: c for c in connections}
        mappings = list(FieldMapping.objects.filter(project=project))
        for m in mappings:
            m.connection = by_connection[m.connection_id]
        elements = list(DataElement.objects.filter(project=project))
        for e in elements:
            e.source_of_truth = by_id.get(e.source_of_truth_id)
        return cls(
            project=project,
            objective=Objective.objects.filter(project=project).first(),
            criteria=list(SuccessCriterion.objects.filter(project=project)),
            data_elements=elements,
            systems=systems,
            connections=connections,
            decision=PatternDecision.objects.filter(project=project).first(),
            mappings=mappings,
        )

    @property
    def connections_by_id(self) -> dict[int, Connection]:
        return {c.pk: c for c in self.connections}

    def mappings_of(self, connection_id: int) -> list[FieldMapping]:
        return [m for m in self.mappings if m.connection_id == connection_id]
