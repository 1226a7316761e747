from __future__ import annotations

from pathlib import Path

import pytest

from bastion import ConfigError, load_settings
from bastion.settings import Settings


def test_documented_environment_names_reach_their_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("BASTION_MODEL_URL", "http://sglang:30000/v1")
    monkeypatch.setenv("BASTION_MODEL_API_KEY", "sk-secret")
    monkeypatch.setenv("BASTION_RETRIEVAL_TOP_K", "7")
    monkeypatch.setenv("BASTION_LOCAL_AUTO_START", "false")
    s = load_settings()
    assert s.data_dir == tmp_path / "d"
    assert s.model.url == "http://sglang:30000/v1"
    assert s.model.api_key is not None and s.model.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(s)
    assert s.retrieval.top_k == 7 and s.local.auto_start is False


def test_config_file_sits_below_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(
        'user = "ops"\n[model]\nurl = "http://file:1/v1"\ntimeout_s = 30\n[retrieval]\ntop_k = 5\n'
    )
    monkeypatch.setenv("BASTION_RETRIEVAL_TOP_K", "9")
    s = load_settings(config)
    assert (s.user, s.model.url, s.model.timeout_s, s.retrieval.top_k) == ("ops", "http://file:1/v1", 30, 9)


def test_config_in_the_data_dir_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    (tmp_path / "config.toml").write_text('[retrieval]\nstore = "qdrant"\n')
    assert load_settings().retrieval.store == "qdrant"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p, m: (p / "c.toml").write_text("[model]\nurll = 1\n") and p / "c.toml", r"model\.urll"),
        (lambda p, m: (p / "c.toml").write_text("[model\n") and p / "c.toml", "not valid TOML"),
        (lambda p, m: p / "missing.toml", "does not exist"),
        (lambda p, m: m.setenv("BASTION_RETRIEVAL_TOPK", "3"), r"retrieval\.topk"),
        (lambda p, m: m.setenv("BASTION_RETRIEVAL_STORE", "faiss"), r"retrieval\.store"),
    ],
)
def test_bad_settings_name_the_key(
    setup, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    config = setup(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match=message):
        load_settings(config if isinstance(config, Path) else None)


NOT_SETTINGS = {
    "BASTION_CONFIG",  # where the settings come from
    "BASTION_TEST_MODEL_URL",  # the test suite's own
    "BASTION_TEST_CAPABLE_MODEL_URL",
    "BASTION_JUDGE_API_KEY",  # `bastion eval --judge-api-key`'s variable
    "BASTION_DOCS",  # docker-compose.yml's: the folder mounted at /docs
    "BASTION_API_BIND",  # docker-compose.yml's: the interface the API is published on
}


def test_every_setting_named_in_code_and_docs_exists() -> None:
    """Messages once told users to set BASTION_MODEL__TIMEOUT_S, which is no setting at all."""
    import re

    repo = Path(__file__).resolve().parents[2]
    files = [
        p
        for folder in ("bastion", "serving", "retrieval", "agents", "evals", "docs", "scripts")
        for p in (repo / folder).rglob("*")
        if p.suffix in {".py", ".md", ".sh", ".txt"}
    ] + [repo / "README.md", repo / "docker-compose.yml"]
    named = {m for p in files for m in re.findall(r"BASTION_[A-Z0-9_]+", p.read_text(errors="replace"))}
    assert len(named) > 20
    sections = {"model", "local", "retrieval", "agent", "api"}
    for name in sorted(named - NOT_SETTINGS):
        key = name.removeprefix("BASTION_").lower()
        section, _, field = key.partition("_")
        if section in sections and field:
            model = Settings.model_fields[section].annotation
            assert field in model.model_fields, f"{name} is named but is not a setting"  # type: ignore[union-attr]
        else:
            assert key in Settings.model_fields, f"{name} is named but is not a setting"
