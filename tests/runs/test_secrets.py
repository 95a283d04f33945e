"""Secrets at rest: MultiFernet under keys from the environment, and key rotation."""

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from planner.models import SystemEndpoint
from planner.runs import secrets
from tests.factories import SystemEndpointFactory

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_round_trip_and_the_token_hides_the_value(settings):
    settings.AETHON_SECRET_KEYS = [OLD]
    token = secrets.encrypt("s3cret-pass")
    assert "s3cret" not in token
    assert secrets.decrypt(token) == "s3cret-pass"
    assert secrets.encrypt_json({}) == ""
    assert secrets.decrypt_json(secrets.encrypt_json({"password": "p"})) == {"password": "p"}


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    settings.AETHON_SECRET_KEYS = [OLD]
    old_token = secrets.encrypt("v")
    settings.AETHON_SECRET_KEYS = [NEW, OLD]
    new_token = secrets.encrypt("v")
    assert secrets.decrypt(old_token) == "v"
    assert Fernet(NEW.encode()).decrypt(new_token.encode()) == b"v"
    settings.AETHON_SECRET_KEYS = [NEW]
    with pytest.raises(secrets.SecretError, match="cannot be decrypted"):
        secrets.decrypt(old_token)


def test_rotation_re_encrypts_every_stored_secret(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.AETHON_SECRET_KEYS = [OLD]
    a = SystemEndpointFactory(secrets_token=secrets.encrypt_json({"password": "a-pass"}))
    b = SystemEndpointFactory(secrets_token=secrets.encrypt_json({"token": "b-token"}))
    untouched = SystemEndpointFactory(secrets_token="")
    version = a.version
    settings.AETHON_SECRET_KEYS = [NEW, OLD]
    out = io.StringIO()
    call_command("rotate_secret_keys", stdout=out)
    assert "2 stored secret set(s) re-encrypted under the first key" in out.getvalue()
    settings.AETHON_SECRET_KEYS = [NEW]  # the old key is gone: everything still reads
    a.refresh_from_db()
    b.refresh_from_db()
    assert secrets.decrypt_json(a.secrets_token) == {"password": "a-pass"}
    assert secrets.decrypt_json(b.secrets_token) == {"token": "b-token"}
    assert SystemEndpoint.objects.get(pk=untouched.pk).secrets_token == ""
    assert a.version == version  # rotation is not an edit
    assert a.history.count() == 1


def test_rotation_refuses_and_changes_nothing_when_a_secret_is_unreadable(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.AETHON_SECRET_KEYS = [NEW]
    readable = SystemEndpointFactory(secrets_token=secrets.encrypt_json({"password": "y"}))
    settings.AETHON_SECRET_KEYS = [OLD]
    orphan = SystemEndpointFactory(secrets_token=secrets.encrypt_json({"password": "x"}))
    before = readable.secrets_token
    settings.AETHON_SECRET_KEYS = [NEW]  # OLD was removed before rotating: `orphan` is lost
    with pytest.raises(CommandError, match="cannot be decrypted") as info:
        call_command("rotate_secret_keys")
    assert str(orphan.system) in str(info.value)
    readable.refresh_from_db()
    assert readable.secrets_token == before  # the whole rotation was rolled back


def test_check_mode_only_reports(db, settings, tmp_path, capsys):
    settings.MEDIA_ROOT = tmp_path
    settings.AETHON_SECRET_KEYS = [OLD]
    ep = SystemEndpointFactory(secrets_token=secrets.encrypt_json({"password": "x"}))
    settings.AETHON_SECRET_KEYS = [NEW, OLD]
    call_command("rotate_secret_keys", "--check")
    assert "1 stored secret set(s) can be decrypted" in capsys.readouterr().out
    ep.refresh_from_db()
    settings.AETHON_SECRET_KEYS = [NEW]
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(ep.secrets_token)  # --check re-encrypted nothing


def test_development_uses_a_private_key_file_in_var_dir(settings, tmp_path):
    settings.AETHON_SECRET_KEYS = []
    settings.VAR_DIR = tmp_path
    token = secrets.encrypt("dev")
    key_file = tmp_path / secrets.KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Fernet(key_file.read_text().strip().encode()).decrypt(token.encode()) == b"dev"
    assert secrets.configured_keys() == [key_file.read_text().strip()]  # stable across calls


def test_a_malformed_key_is_a_clear_configuration_error(settings):
    settings.AETHON_SECRET_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="comma-separated Fernet keys"):
        secrets.encrypt("x")


def test_production_refuses_to_start_without_secret_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AETHON_"))}
    env.update(
        AETHON_ENV="production",
        DJANGO_SECRET_KEY="k" * 50,
        DJANGO_ALLOWED_HOSTS="aethon.example.com",
        AETHON_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "AETHON_SECRET_KEYS must be set when AETHON_ENV=production" in result.stderr
    assert not (tmp_path / secrets.KEY_FILE_NAME).exists()


def test_sealed_secrets_carry_their_destination_inside_the_token(settings):
    settings.AETHON_SECRET_KEYS = [OLD]
    where = {"kind": "postgres", "host": "db.example", "port": 5432, "user": "u", "database": "d"}
    token = secrets.seal({"password": "p-1"}, {"password": where})
    assert "db.example" not in token  # the binding is encrypted and authenticated with it
    sealed = secrets.unseal(token)
    assert sealed.values == {"password": "p-1"}
    assert sealed.bindings == {"password": where}
    assert secrets.seal({}, {}) == ""
    assert secrets.unseal("") == secrets.Sealed({}, {})
    with pytest.raises(ValueError, match="no destination"):
        secrets.seal({"token": "t"}, {})


def test_a_token_written_before_bindings_has_no_destination(settings):
    settings.AETHON_SECRET_KEYS = [OLD]
    legacy = secrets.unseal(secrets.encrypt_json({"token": "t"}))
    assert legacy.values == {"token": "t"} and legacy.bindings is None


def test_rotation_keeps_the_binding(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.AETHON_SECRET_KEYS = [OLD]
    where = {"kind": "http_json", "base_url": "https://api.example.com", "auth": "bearer"}
    ep = SystemEndpointFactory(secrets_token=secrets.seal({"token": "t"}, {"token": where}))
    settings.AETHON_SECRET_KEYS = [NEW, OLD]
    call_command("rotate_secret_keys", stdout=io.StringIO())
    settings.AETHON_SECRET_KEYS = [NEW]
    ep.refresh_from_db()
    assert secrets.unseal(ep.secrets_token) == secrets.Sealed({"token": "t"}, {"token": where})
