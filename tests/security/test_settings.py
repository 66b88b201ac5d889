"""Production settings: ``check --deploy`` is clean with the required environment, and refuses to start without it."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

ROOT = Path(__file__).resolve().parent.parent.parent


def _manage(*args: str, env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ELM_PSEUDONYM"))}
    # An empty var/ so no key file of the developer's checkout is picked up.
    full = {**base, "DJANGO_SETTINGS_MODULE": "elmsite.settings.prod", "ELM_VAR_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=180
    )


REQUIRED = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "ELM_PSEUDONYM_KEY": secrets.token_hex(32),
    "DJANGO_ALLOWED_HOSTS": "elm.example.com",
}


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    """Run ``manage.py check --deploy --fail-level WARNING`` with the required environment: no issue at all."""
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=REQUIRED, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_production_refuses_to_start_without_a_required_setting(tmp_path, missing):
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    result = _manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr


def test_production_refuses_a_key_file_readable_by_others(tmp_path):
    """Accept the secret key from var/ only when the file is 0600."""
    key = tmp_path / "django-secret.key"
    key.write_text(secrets.token_urlsafe(50))
    key.chmod(0o644)
    env = {k: v for k, v in REQUIRED.items() if k != "DJANGO_SECRET_KEY"}
    result = _manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "chmod 600" in result.stderr
    key.chmod(0o600)
    assert _manage("check", env=env, tmp_path=tmp_path).returncode == 0


@pytest.mark.parametrize("password", ["short", "password1234", "12345678901234", "victim-user"])
def test_weak_passwords_are_rejected(password, db):
    from tests.factories import UserFactory

    with pytest.raises(ValidationError):
        validate_password(password, user=UserFactory.build(username="victim-user"))


def test_a_strong_password_is_accepted():
    validate_password("correct-horse-battery-staple")
