"""Settings and where config files come from: AIRLAB_CONFIG_DIR, ./configs, the user's config directory,
then the defaults packaged with the library, file by file."""

from pathlib import Path

import pytest

from airlab.settings import (
    PACKAGED_CONFIGS,
    ConfigError,
    Settings,
    default_workspace,
    described,
    find_config,
    load_yaml,
)
from airlab.strategy import PRESETS


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty directory outside any checkout, with a user config dir of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRLAB_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path


def test_yaml_config_is_read_and_environment_wins(elsewhere, monkeypatch):
    (elsewhere / "mine").mkdir()
    (elsewhere / "mine" / "airlab.yaml").write_text(
        "log_level: DEBUG\nbus:\n  max_deliver: 7\n  ack_wait_seconds: 12\n"
    )
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(elsewhere / "mine"))
    monkeypatch.setenv("AIRLAB_BUS__MAX_DELIVER", "3")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    assert settings.bus.max_deliver == 3
    assert settings.bus.ack_wait_seconds == 12
    rows = {key: source for key, _, source in described(settings)}
    assert rows["bus.max_deliver"] == "env AIRLAB_BUS__MAX_DELIVER"
    assert rows["bus.ack_wait_seconds"] == "airlab.yaml, AIRLAB_CONFIG_DIR"
    assert rows["bus.retention_days"] == "default"


def test_from_an_empty_directory_the_packaged_defaults_serve(elsewhere):
    for name in ("airlab.yaml", "agents.yaml", "llm_servers.yaml", "datasets.yaml"):
        assert find_config(name) == ("packaged default", PACKAGED_CONFIGS / name)
    assert load_yaml("agents.yaml")["agents"]
    settings = Settings()
    assert settings.research.seeds == [0, 1, 2]
    assert settings.workspace == elsewhere / "xdg-data" / "airlab" / "workspace"


def test_each_file_comes_from_the_first_place_that_has_it(elsewhere, monkeypatch):
    user = elsewhere / "xdg-config" / "airlab"
    user.mkdir(parents=True)
    (user / "agents.yaml").write_text("agents: {}\n")
    (user / "datasets.yaml").write_text("datasets: {}\n")
    (elsewhere / "configs").mkdir()
    (elsewhere / "configs" / "datasets.yaml").write_text("datasets: {}\n")
    explicit = elsewhere / "explicit"
    explicit.mkdir()
    (explicit / "airlab.yaml").write_text("log_level: DEBUG\n")
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(explicit))
    assert find_config("airlab.yaml") == ("AIRLAB_CONFIG_DIR", explicit / "airlab.yaml")
    assert find_config("datasets.yaml") == ("./configs", Path("configs") / "datasets.yaml")
    assert find_config("agents.yaml") == ("user config", user / "agents.yaml")
    assert find_config("llm_servers.yaml")[0] == "packaged default"


def test_a_missing_config_dir_or_a_broken_file_is_a_clear_error(elsewhere, monkeypatch):
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(elsewhere / "missing"))
    with pytest.raises(ConfigError, match="missing': not a directory"):
        Settings()
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(elsewhere))
    (elsewhere / "agents.yaml").write_text("agents: [unclosed\n")
    with pytest.raises(ConfigError, match=r"agents\.yaml: not valid YAML"):
        load_yaml("agents.yaml")


def test_inside_a_checkout_the_workspace_is_local(elsewhere):
    assert default_workspace() == elsewhere / "xdg-data" / "airlab" / "workspace"
    (elsewhere / ".airlab").mkdir()
    assert default_workspace() == Path(".airlab")


def test_the_loops_strategy_is_a_preset_with_knobs_changed_on_top(elsewhere, monkeypatch):
    (elsewhere / "mine").mkdir()
    (elsewhere / "mine" / "airlab.yaml").write_text(
        "research:\n  preset: serial\n  strategy:\n    trials_per_idea: 6\n"
    )
    monkeypatch.setenv("AIRLAB_CONFIG_DIR", str(elsewhere / "mine"))
    monkeypatch.setenv("AIRLAB_RESEARCH__STRATEGY__EXPLOIT", "false")
    strategy = Settings().research.strategy
    assert (strategy.parallel_trials, strategy.trials_per_idea, strategy.exploit) == (1, 6, False)
    assert strategy.improve and strategy.portfolio_share == 0.5  # the rest: the default's
    assert Settings(research={"preset": "floor-off"}).research.strategy.portfolio_share == 0
    rows = {key: source for key, _, source in described(Settings())}
    assert rows["research.strategy.parallel_trials"] == "preset serial"
    assert rows["research.strategy.exploit"] == "env AIRLAB_RESEARCH__STRATEGY__EXPLOIT"
    assert rows["research.strategy.trials_per_idea"].startswith("airlab.yaml")
    assert set(PRESETS) >= {"default", "floor-off", "exploit-off", "serial"}
    with pytest.raises(ValueError, match="no strategy preset 'fast': one of default, floor-off"):
        Settings(research={"preset": "fast"})
    with pytest.raises(ValueError, match=r"strategy\.expoit"):
        Settings(research={"strategy": {"expoit": False}})  # a misspelt knob is an error, not ignored


def test_a_knob_where_earlier_versions_had_it_still_counts_and_says_where_it_moved(elsewhere, monkeypatch):
    monkeypatch.setenv("AIRLAB_RESEARCH__PATIENCE_ROUNDS", "1")
    with pytest.warns(FutureWarning, match="research.strategy.patience_rounds"):
        settings = Settings()
    assert settings.research.strategy.patience_rounds == 1
