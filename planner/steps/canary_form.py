"""The canary probe's settings form: every field checked, errors named per field."""

import json
import re
from urllib.parse import urlsplit

from django import forms

from planner.models import CanaryProbe
from planner.runs import canary

_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_SAMPLE_TAG = canary.TAG_PREFIX + "0" * 32


def _http_url(value: str, label: str) -> str:
    value = (value or "").strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise forms.ValidationError(f"The {label} must start with http:// or https:// and a host.")
    if parts.username or parts.password:
        raise forms.ValidationError("Put the credential in the header below, not in the URL.")
    return value


class CanaryProbeForm(forms.ModelForm):
    credential = forms.CharField(
        label="write credential (header value)",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again; leave empty to keep the stored one."
        " Sent only to the source create and delete URLs, never to the target.",
    )

    class Meta:
        model = CanaryProbe
        fields = [
            "enabled",
            "create_url",
            "create_body",
            "delete_url",
            "lookup_url",
            "credential_header",
            "poll_seconds",
            "timeout_seconds",
        ]

    def clean_create_url(self):
        return _http_url(self.cleaned_data.get("create_url"), "source create URL")

    def clean_create_body(self):
        body = self.cleaned_data.get("create_body", "")
        if canary.PLACEHOLDER not in body:
            raise forms.ValidationError("Put {tag} where the test record's tag goes.")
        try:
            json.loads(body.replace(canary.PLACEHOLDER, _SAMPLE_TAG))
        except ValueError as exc:
            raise forms.ValidationError(f"The create body is not valid JSON: {exc}.") from None
        return body

    def clean_delete_url(self):
        value = _http_url(self.cleaned_data.get("delete_url"), "source delete URL")
        if canary.PLACEHOLDER not in value:
            raise forms.ValidationError("Put {tag} where the test record's tag goes.")
        return value

    def clean_lookup_url(self):
        value = _http_url(self.cleaned_data.get("lookup_url"), "target lookup URL")
        if canary.PLACEHOLDER not in value:
            raise forms.ValidationError("Put {tag} where the test record's tag goes.")
        return value

    def clean_credential_header(self):
        value = (self.cleaned_data.get("credential_header") or "").strip()
        if not _HEADER.match(value):
            raise forms.ValidationError("Give a header name such as Authorization.")
        return value

    def clean_poll_seconds(self):
        value = self.cleaned_data.get("poll_seconds")
        if value is not None and not 1 <= value <= 300:
            raise forms.ValidationError("Poll every 1 to 300 seconds.")
        return value

    def clean_timeout_seconds(self):
        value = self.cleaned_data.get("timeout_seconds")
        if value is not None and not 5 <= value <= 3600:
            raise forms.ValidationError("Give up after 5 to 3600 seconds.")
        return value

    def clean(self):
        data = super().clean()
        create, delete = data.get("create_url"), data.get("delete_url")
        if create and delete and canary.origin(create) != canary.origin(delete):
            # The write credential goes to both; it must not travel to a second server.
            self.add_error("delete_url", "The delete URL must be on the same server as create.")
        poll, timeout = data.get("poll_seconds"), data.get("timeout_seconds")
        if poll and timeout and poll >= timeout:
            self.add_error("poll_seconds", "Poll more often than the time-out.")
        if create and data.get("credential_header") and not data.get("credential"):
            stored = canary.credential_binding(self.instance) if self.instance.pk else None
            wanted = {
                "kind": "canary",
                "origin": canary.origin(create),
                "header": data["credential_header"].lower(),
            }
            if stored is None:
                self.add_error("credential", "Enter the write credential for the source.")
            elif stored != wanted:
                self.add_error(
                    "credential",
                    "The stored credential was entered for another source server or header;"
                    " enter it again.",
                )
        return data
