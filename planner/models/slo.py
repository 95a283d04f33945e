"""Service-level indicators over time: one point per measurement of a success criterion.

A point stores counts (good events, total events) and lag percentiles, never a full run, so a
criterion measured every minute for a year stays small once old points are rolled up to hours.
"""

from django.db import models

from .objectives import SuccessCriterion


class SliPoint(models.Model):
    class Resolution(models.TextChoices):
        RAW = "raw", "one measurement"
        HOUR = "hour", "hourly roll-up"

    criterion = models.ForeignKey(
        SuccessCriterion, on_delete=models.CASCADE, related_name="sli_points"
    )
    # Start of the measured interval (a roll-up: the start of its hour).
    at = models.DateTimeField()
    resolution = models.CharField(max_length=4, choices=Resolution.choices, default="raw")
    good = models.BigIntegerField(help_text="Events that met the target.")
    total = models.BigIntegerField(help_text="Events measured.")
    # Propagation lag in seconds; a roll-up keeps the worst percentile of its points.
    lag_p50 = models.FloatField(null=True, blank=True)
    lag_p95 = models.FloatField(null=True, blank=True)
    lag_p99 = models.FloatField(null=True, blank=True)
    lag_max = models.FloatField(null=True, blank=True)
    late_now = models.BigIntegerField(
        null=True, blank=True, help_text="Records late at the time of the measurement."
    )
    points = models.PositiveIntegerField(default=1, help_text="Measurements folded in.")

    class Meta:
        ordering = ["criterion", "at"]
        indexes = [models.Index(fields=["criterion", "resolution", "at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(good__gte=0) & models.Q(good__lte=models.F("total")),
                name="sli_good_within_total",
            ),
            models.UniqueConstraint(
                fields=["criterion", "resolution", "at"], name="one_sli_point_per_instant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.criterion_id} {self.at:%Y-%m-%d %H:%M} {self.good}/{self.total}"
