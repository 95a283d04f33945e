import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AETHON_ENV"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_extra={
            "AETHON_ENV": "production",
            "DJANGO_SECRET_KEY": "k" * 20 + "-Zq8!xv4#Lp2@Rt6$Nw9%Bj3^Hc7&Fm5",
            "DJANGO_ALLOWED_HOSTS": "aethon.example.com",
            "AETHON_SECRET_KEYS": "lS8qIfTcrAWMAzsvHLmCyz5VFBN1QXsVxiP4IVI8h0k=",
            "AETHON_VAR_DIR": str(tmp_path),
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        },
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_manage(
        "check",
        env_extra={
            "AETHON_ENV": "production",
            "DJANGO_ALLOWED_HOSTS": "x",
            "AETHON_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_find_python_picks_a_312_or_newer():
    out = subprocess.run([str(ROOT / "scripts/find-python.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    version = subprocess.run(
        [out.stdout.strip(), "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"],
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == "True"


def test_find_python_explains_what_to_install_when_none_fits(tmp_path):
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts/find-python.sh")], capture_output=True, text=True, env=env
    )
    if out.returncode == 0 and out.stdout.startswith("/usr/"):
        pytest.skip(f"this machine has a system Python >= 3.12 at {out.stdout.strip()}")
    assert out.returncode == 1
    assert "needs Python 3.12 or newer" in out.stderr and "pyenv install 3.13" in out.stderr


PRODUCTION_ENV = {
    "AETHON_ENV": "production",
    "DJANGO_SECRET_KEY": "k" * 20 + "-Zq8!xv4#Lp2@Rt6$Nw9%Bj3^Hc7&Fm5",
    "DJANGO_ALLOWED_HOSTS": "aethon.example.com",
    "AETHON_SECRET_KEYS": "lS8qIfTcrAWMAzsvHLmCyz5VFBN1QXsVxiP4IVI8h0k=",
}


@pytest.mark.parametrize(
    "backend", [None, "django.core.mail.backends.console.EmailBackend"], ids=["default", "console"]
)
def test_check_deploy_refuses_the_console_email_backend_in_production(tmp_path, backend):
    env = {**PRODUCTION_ENV, "AETHON_VAR_DIR": str(tmp_path)}
    if backend:
        env["DJANGO_EMAIL_BACKEND"] = backend
    result = run_manage("check", "--deploy", env_extra=env)
    assert result.returncode != 0
    assert "aethon.E001" in result.stderr
    assert "django.core.mail.backends.console.EmailBackend" in result.stderr
    assert "DJANGO_EMAIL_BACKEND" in result.stderr


def test_production_refuses_to_migrate_with_the_console_email_backend(tmp_path):
    # The check is not only a --deploy one: every management command that runs checks stops.
    env = {**PRODUCTION_ENV, "AETHON_VAR_DIR": str(tmp_path)}
    result = run_manage("migrate", "--check", env_extra=env)
    assert result.returncode != 0
    assert "aethon.E001" in result.stderr


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.dummy.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
    ],
)
def test_the_email_check_errors_on_development_backends_in_production(settings, backend):
    from django.core.checks import ERROR

    from planner.checks import check_email_backend

    settings.PRODUCTION = True
    settings.EMAIL_BACKEND = backend
    [error] = check_email_backend(None)
    assert error.id == "aethon.E001" and error.level == ERROR
    assert backend in error.msg


def test_the_email_check_accepts_smtp_in_production_and_anything_in_development(settings):
    from planner.checks import check_email_backend

    settings.PRODUCTION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert check_email_backend(None) == []
    settings.PRODUCTION = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert check_email_backend(None) == []


def test_smtp_settings_come_from_the_environment(tmp_path):
    env = {
        "AETHON_VAR_DIR": str(tmp_path),
        "DJANGO_EMAIL_HOST": "smtp.example.com",
        "DJANGO_EMAIL_PORT": "587",
        "DJANGO_EMAIL_HOST_USER": "aethon",
        "DJANGO_EMAIL_USE_TLS": "1",
    }
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings as s;"
        "print(s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_USE_TLS, s.EMAIL_USE_SSL)",
        env_extra=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "smtp.example.com",
        "587",
        "aethon",
        "True",
        "False",
    ]
