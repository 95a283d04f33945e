"""How Aethon reaches a system of the inventory: connection kind, settings, dataset and key.

Secrets are stored only as a Fernet token (planner.runs.secrets) and never leave the server: they
are excluded from the history tables, and no template, log or API receives them.
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils.deconstruct import deconstructible
from simple_history.models import HistoricalRecords

from ..connectors.names import SECRET_HEADER_PREFIX
from .base import VersionedModel
from .projects import IntegrationProject, System


@deconstructible
class PrivateStorage(FileSystemStorage):
    """MEDIA_ROOT/private, with no URL: files are streamed only by permission-checked views.

    The location follows MEDIA_ROOT at call time, so tests and deployments can move it.
    """

    @property
    def base_location(self) -> Path:  # type: ignore[override]
        return Path(settings.MEDIA_ROOT) / "private"

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)

    def url(self, name: str | None) -> str:
        raise ValueError("Private files have no public URL.")


private_storage = PrivateStorage()


def upload_path(instance: "SystemEndpoint", filename: str) -> str:
    return f"systems/{instance.project_id}/{instance.system_id}/{Path(filename).name}"


class SystemEndpoint(VersionedModel):
    """Connection settings of one System (one-to-one)."""

    class Kind(models.TextChoices):
        POSTGRES = "postgres", "PostgreSQL"
        MYSQL = "mysql", "MySQL / MariaDB"
        SQLITE = "sqlite", "SQLite file (upload)"
        FILE = "file", "CSV / JSON / XLSX file (upload)"
        HTTP_JSON = "http_json", "HTTP JSON API"

    # The secrets each kind can use (connector secret names). HTTP credential headers are
    # secrets too, named SECRET_HEADER_PREFIX + the header name in lower case.
    SECRET_NAMES = {
        Kind.POSTGRES: ("password",),
        Kind.MYSQL: ("password",),
        Kind.SQLITE: (),
        Kind.FILE: (),
        Kind.HTTP_JSON: ("token", "password", "api_key"),
    }
    UPLOAD_KINDS = (Kind.SQLITE, Kind.FILE)

    project = models.ForeignKey(
        IntegrationProject, on_delete=models.CASCADE, related_name="system_endpoints"
    )
    system = models.OneToOneField(System, on_delete=models.CASCADE, related_name="endpoint")
    kind = models.CharField("connection kind", max_length=16, choices=Kind.choices)
    config = models.JSONField(
        default=dict, blank=True, help_text="Non-secret connector settings (host, port, …)."
    )
    dataset = models.TextField(
        blank=True, help_text="Table, SELECT query, or API endpoint the records come from."
    )
    key_fields = models.CharField(
        "key field(s)", max_length=300, help_text="e.g. id, or org_id, number"
    )
    upload = models.FileField(
        upload_to=upload_path, storage=private_storage, max_length=300, blank=True
    )
    upload_name = models.CharField("uploaded file", max_length=255, blank=True)
    # Sealed with the destination each secret was entered for (planner.secrets.seal).
    secrets_token = models.TextField(blank=True, editable=False)
    # Which secrets are set (names only), so pages can say "set" without decrypting anything.
    secrets_set = models.JSONField(default=list, blank=True, editable=False)
    last_test = models.JSONField(null=True, blank=True, editable=False)
    last_tested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Secrets never reach the history tables; test results are not edits.
    history = HistoricalRecords(excluded_fields=["secrets_token", "last_test", "last_tested_at"])

    class Meta:
        verbose_name = "connection settings"
        verbose_name_plural = "connection settings"

    def __str__(self) -> str:
        return f"{self.system} ({self.get_kind_display()})"

    @property
    def secret_labels(self) -> list[str]:
        """The stored secrets as a page names them: 'password', 'Private-Token header', …"""
        spelled = {h.lower(): h for h in (self.config or {}).get("secret_headers") or []}
        out = []
        for name in self.secrets_set:
            if name.startswith(SECRET_HEADER_PREFIX):
                header = name[len(SECRET_HEADER_PREFIX) :]
                out.append(f"{spelled.get(header, header)} header")
            else:
                out.append(name)
        return out

    @property
    def key_list(self) -> list[str]:
        return [k.strip() for k in self.key_fields.split(",") if k.strip()]

    @property
    def is_upload(self) -> bool:
        return self.kind in self.UPLOAD_KINDS
