"""The local llama-server's lifecycle, for real: start, find, stop, and the failure messages."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from serving import LocalServer, LocalServerConfig, LocalServerError

pytestmark = pytest.mark.llm


def _config(tmp_path: Path, binary: Path, model: Path, **kwargs: object) -> LocalServerConfig:
    return LocalServerConfig(binary=binary, model=model, state_dir=tmp_path / "server", parallel=1, **kwargs)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    )


def test_start_is_idempotent_and_stop_leaves_no_process(
    tmp_path: Path, llama_binary: Path, llama_model: Path
) -> None:
    server = LocalServer(_config(tmp_path, llama_binary, llama_model))
    assert server.status() is None
    state = server.start()
    try:
        assert server.healthy(state)
        assert "--threads" in state.command and state.command[state.command.index("--threads") + 1] == "1"
        again = LocalServer(_config(tmp_path, llama_binary, llama_model)).start()
        assert again.pid == state.pid, "a second start must find the running server, not start a twin"
        assert server.log_file.exists()
    finally:
        assert server.stop()
    assert not _alive(state.pid)
    assert server.status() is None
    assert not server.stop()


def test_port_in_use_is_a_clear_error(tmp_path: Path, llama_binary: Path, llama_model: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalServer(_config(tmp_path, llama_binary, llama_model, port=port))
        with pytest.raises(LocalServerError, match=f"Port {port} .* already in use"):
            server.start()
    assert server.status() is None


def test_missing_files_and_early_exit_are_reported(
    tmp_path: Path, llama_binary: Path, llama_model: Path
) -> None:
    with pytest.raises(LocalServerError, match=r"model file .* is missing"):
        LocalServer(_config(tmp_path, llama_binary, tmp_path / "nope.gguf")).start()
    not_a_model = tmp_path / "bad.gguf"
    not_a_model.write_bytes(b"GGUF" + b"\0" * 64)
    server = LocalServer(_config(tmp_path, llama_binary, not_a_model))
    with pytest.raises(LocalServerError, match="exited with code"):
        server.start()
    assert server.status() is None


def test_stale_state_file_is_ignored(tmp_path: Path, llama_binary: Path, llama_model: Path) -> None:
    server = LocalServer(_config(tmp_path, llama_binary, llama_model))
    server.config.state_dir.mkdir(parents=True)
    server.state_file.write_text(
        '{"pid": 999999, "port": 1, "host": "127.0.0.1", "url": "x", '
        '"log_file": "x", "started_at": "2026-01-01T00:00:00Z", "command": []}'
    )
    assert server.status() is None
    assert not server.state_file.exists()
