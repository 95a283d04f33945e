"""Secrets at rest: Fernet tokens under keys from the environment, with key rotation.

AETHON_SECRET_KEYS holds comma-separated Fernet keys (``Fernet.generate_key()``). The first key
encrypts; every key decrypts, so a new key can be put in front while tokens written under the
old one are still read. ``manage.py rotate_secret_keys`` then re-encrypts every stored secret
under the first key, after which the old key can be dropped.

Development without the variable uses a per-install key file in VAR_DIR (like SECRET_KEY);
production refuses to start without the variable (see settings).

Connection secrets are sealed with the destination they were entered for (``seal``): the
binding is inside the same authenticated token, so it cannot be edited or swapped apart from
the secret, and a secret is only ever used where its binding matches the current settings.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

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


# Marks a sealed payload; payloads without it are bare {name: value} dicts written before
# secrets were bound to their destination.
SEALED_FORMAT = "aethon-bound-1"


@dataclass(frozen=True)
class Sealed:
    """Secrets and, per secret, the destination it was entered for.

    ``bindings`` is None for a token written before bindings existed: nothing says where such
    a secret may go, so callers must not use it.
    """

    values: dict[str, str]
    bindings: dict[str, dict[str, Any]] | None


def seal(values: dict[str, str], bindings: dict[str, dict[str, Any]]) -> str:
    """Encrypt secrets together with their destinations; no secrets is no token at all."""
    if not values:
        return ""
    unbound = sorted(set(values) - set(bindings))
    if unbound:
        raise ValueError(f"Secrets with no destination cannot be stored: {', '.join(unbound)}.")
    payload = {
        "format": SEALED_FORMAT,
        "values": values,
        "bindings": {name: bindings[name] for name in values},
    }
    return encrypt(json.dumps(payload, sort_keys=True))


def unseal(token: str) -> Sealed:
    if not token:
        return Sealed({}, {})
    data = json.loads(decrypt(token))
    if isinstance(data, dict) and data.get("format") == SEALED_FORMAT:
        return Sealed(dict(data["values"]), dict(data["bindings"]))
    return Sealed(dict(data), None)


def rotate(token: str) -> str:
    """The same secret, re-encrypted under the first key."""
    if not token:
        return token
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretError("A stored secret cannot be decrypted with the configured keys.") from None
