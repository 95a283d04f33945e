"""Secrets at rest: Fernet tokens under keys from the environment, with key rotation.

AETHON_SECRET_KEYS holds comma-separated Fernet keys (``Fernet.generate_key()``). The first key
encrypts; every key decrypts, so a new key can be put in front while tokens written under the
old one are still read. ``manage.py rotate_secret_keys`` then re-encrypts every stored secret
under the first key, after which the old key can be dropped.

Development without the variable uses a per-install key file in VAR_DIR (like SECRET_KEY);
production refuses to start without the variable (see settings).
"""

import json
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_FILE_NAME = "secret_keys"


class SecretError(Exception):
    """A stored secret cannot be read with the configured keys."""


def _dev_keys(var_dir: Path) -> list[str]:
    path = var_dir / KEY_FILE_NAME
    if not path.exists():
        path.write_text(Fernet.generate_key().decode() + "\n")
        path.chmod(0o600)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def configured_keys() -> list[str]:
    keys = [k.strip() for k in getattr(settings, "AETHON_SECRET_KEYS", []) if k.strip()]
    if keys:
        return keys
    if getattr(settings, "PRODUCTION", False):
        raise ImproperlyConfigured("AETHON_SECRET_KEYS must be set when AETHON_ENV=production.")
    return _dev_keys(Path(settings.VAR_DIR))


@lru_cache(maxsize=4)
def _multi(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "AETHON_SECRET_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes);"
            " make one with: python -c 'from cryptography.fernet import Fernet;"
            " print(Fernet.generate_key().decode())'"
        ) from exc


def fernet() -> MultiFernet:
    # Keyed by the key list, so a settings override (tests, rotation) takes effect at once.
    return _multi(tuple(configured_keys()))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretError(
            "A stored secret cannot be decrypted with the keys in AETHON_SECRET_KEYS; was a key"
            " removed before running rotate_secret_keys?"
        ) from None


def encrypt_json(values: dict[str, str]) -> str:
    """Encrypt a dict of secrets; an empty dict is stored as no token at all."""
    return encrypt(json.dumps(values, sort_keys=True)) if values else ""


def decrypt_json(token: str) -> dict[str, str]:
    return json.loads(decrypt(token)) if token else {}


def rotate(token: str) -> str:
    """The same secret, re-encrypted under the first key."""
    if not token:
        return token
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretError("A stored secret cannot be decrypted with the configured keys.") from None
