"""The typed configuration file."""

from __future__ import annotations

import pytest

from kiosk.config import Config, load_config, parse_config, reference
from kiosk.errors import ConfigError


def test_empty_file_gives_every_default(tmp_path):
    path = tmp_path / "kiosk.toml"
    path.write_text("")
    assert load_config(path) == Config()


def test_missing_default_file_is_fine_but_missing_explicit_file_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr("kiosk.config.DEFAULT_PATH", tmp_path / "absent.toml")
    assert load_config() == Config()
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[scan]\nwrokers = 2\n", ["wrokers", "[scan]"]),
        ("[nope]\n", ["nope"]),
        ("[scan]\nworkers = 'two'\n", ["workers", "integer"]),
        ("[scan]\nworkers = true\n", ["workers", "integer"]),
        ("[policy]\nexecutables = 'maybe'\n", ["executables", "'flag'"]),
        ("[station]\nusb_only = 1\n", ["usb_only", "true or false"]),
        ("scan = 3\n", ["[scan]", "table"]),
        ("[scan\n", ["not valid TOML"]),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, text, words):
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_values_are_typed():
    cfg = parse_config("[scan]\nfile_timeout = 10\n[signatures]\nmax_age_days = 2\n")
    assert cfg.scan.file_timeout == 10.0 and isinstance(cfg.scan.file_timeout, float)
    assert cfg.signatures.max_age_days == 2.0


def test_reference_documents_every_key_and_parses_back():
    text = reference()
    assert parse_config(text) == Config()
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            assert text.splitlines()[text.splitlines().index(line) - 1].startswith("# ")
