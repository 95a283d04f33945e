"""Step 3: the integration pattern the team chose, and why."""

from django.db import models
from simple_history.models import HistoricalRecords

from .base import VersionedModel
from .projects import IntegrationProject


class PatternDecision(VersionedModel):
    """Step 3: the integration pattern the team chose, and why."""

    class Pattern(models.TextChoices):
        POINT_TO_POINT = "point_to_point", "Point-to-point"
        HUB_AND_SPOKE = "hub_and_spoke", "Hub-and-spoke (iPaaS / middleware)"
        API_GATEWAY = "api_gateway", "API gateway"

    project = models.OneToOneField(
        IntegrationProject, on_delete=models.CASCADE, related_name="pattern_decision"
    )
    pattern = models.CharField(max_length=16, choices=Pattern.choices, blank=True)
    rationale = models.TextField(blank=True)
    tools = models.CharField(
        max_length=300, blank=True, help_text="Chosen tools, e.g. MuleSoft, Zapier, Kong."
    )
    history = HistoricalRecords()

    def __str__(self) -> str:
        return "Pattern decision"
