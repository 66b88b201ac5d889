"""Secrets come from the environment or a 0600 key file; anything readable by others is refused."""

import os
import stat

import pytest

from core.keys import MissingSecret, read_secret

ENV = "ELM_TEST_SECRET_FOR_KEYS"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def test_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "from-env")
    key = tmp_path / "k"
    key.write_text("from-file")
    key.chmod(0o600)
    assert read_secret(env=ENV, key_file=key, create=False) == "from-env"


def test_a_0600_key_file_is_read(tmp_path):
    key = tmp_path / "k"
    key.write_text("from-file\n")
    key.chmod(0o600)
    assert read_secret(env=ENV, key_file=key, create=False) == "from-file"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_key_file_readable_by_others_is_refused(tmp_path, mode):
    key = tmp_path / "k"
    key.write_text("leaky")
    key.chmod(mode)
    with pytest.raises(MissingSecret, match="chmod 600"):
        read_secret(env=ENV, key_file=key, create=False)


def test_a_missing_secret_is_an_error_where_files_may_not_be_created(tmp_path):
    with pytest.raises(MissingSecret):
        read_secret(env=ENV, key_file=tmp_path / "absent", create=False)


def test_a_created_key_file_is_0600_and_stable(tmp_path, capsys):
    key = tmp_path / "sub" / "k"
    first = read_secret(env=ENV, key_file=key, create=True)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert len(first) == 64
    assert read_secret(env=ENV, key_file=key, create=True) == first
    assert "WARNING" in capsys.readouterr().err
