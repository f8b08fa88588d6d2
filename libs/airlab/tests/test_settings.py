from airlab.settings import Settings


def test_yaml_config_is_read_and_environment_wins(tmp_path, monkeypatch):
    (tmp_path / "airlab.yaml").write_text(
        "log_level: DEBUG\nbus:\n  max_deliver: 7\n  ack_wait_seconds: 12\n"
    )
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("AIRLAB_BUS__MAX_DELIVER", "3")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    assert settings.bus.max_deliver == 3
    assert settings.bus.ack_wait_seconds == 12


def test_defaults_without_a_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(tmp_path / "missing"))
    settings = Settings()
    assert settings.bus.stream == "AIRLAB"
    assert settings.research.seeds == [0, 1, 2]
