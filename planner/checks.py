"""System checks that stop a production install that would misbehave quietly."""

from django.conf import settings
from django.core.checks import Error, Tags, register

# Backends that never deliver: sign-off requests and alerts would vanish without a trace.
UNDELIVERED_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
}


# Not deploy-only: in production every command that runs checks (migrate, runserver, check)
# stops, not only `check --deploy`.
@register(Tags.security)
def check_email_backend(app_configs, **kwargs) -> list[Error]:
    if not getattr(settings, "PRODUCTION", False):
        return []
    if settings.EMAIL_BACKEND not in UNDELIVERED_EMAIL_BACKENDS:
        return []
    return [
        Error(
            f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which delivers no email, in production.",
            hint="Set DJANGO_EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and "
            "DJANGO_EMAIL_HOST (with DJANGO_EMAIL_PORT, DJANGO_EMAIL_HOST_USER, "
            "DJANGO_EMAIL_HOST_PASSWORD, DJANGO_EMAIL_USE_TLS as your mail server needs).",
            id="aethon.E001",
        )
    ]
