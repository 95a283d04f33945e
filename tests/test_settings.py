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
