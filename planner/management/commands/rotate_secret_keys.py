"""Re-encrypt every stored secret under the first key of AETHON_SECRET_KEYS.

Rotation: put a new key in front of AETHON_SECRET_KEYS (keep the old ones after it), restart,
run this command, then remove the old keys.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from planner.models import CanaryProbe, SystemEndpoint
from planner.runs import secrets


class Command(BaseCommand):
    help = "Re-encrypt every stored connection secret under the first AETHON_SECRET_KEYS key."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Only check that every secret can be decrypted."
        )

    def handle(self, *args, check: bool = False, **options) -> None:
        rotated, unreadable = 0, []
        with transaction.atomic():
            endpoints = SystemEndpoint.objects.select_for_update().exclude(secrets_token="")
            for endpoint in endpoints.select_related("system"):
                try:
                    token = secrets.rotate(endpoint.secrets_token)
                except secrets.SecretError:
                    unreadable.append(f"{endpoint.system} (project {endpoint.project_id})")
                    continue
                if not check:
                    # An update: rotation is not an edit (no version bump, no history row).
                    SystemEndpoint.objects.filter(pk=endpoint.pk).update(secrets_token=token)
                rotated += 1
            probes = CanaryProbe.objects.select_for_update().exclude(credential_token="")
            for probe in probes.select_related("connection"):
                try:
                    token = secrets.rotate(probe.credential_token)
                except secrets.SecretError:
                    unreadable.append(f"canary probe of {probe.connection}")
                    continue
                if not check:
                    CanaryProbe.objects.filter(pk=probe.pk).update(credential_token=token)
                rotated += 1
            if unreadable:
                raise CommandError(
                    "These secrets cannot be decrypted with the configured keys, so nothing was"
                    " changed: " + "; ".join(unreadable)
                )
        verb = "can be decrypted" if check else "re-encrypted under the first key"
        self.stdout.write(self.style.SUCCESS(f"{rotated} stored secret set(s) {verb}."))
