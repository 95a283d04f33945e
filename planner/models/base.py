from django.db import models


class VersionedModel(models.Model):
    """An artifact edited by several people: `version` guards against lost updates.

    Every save through `planner.concurrency.save_versioned` checks that the version the editor
    started from is still current, then bumps it.
    """

    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
