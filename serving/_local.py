"""Runs llama.cpp's `llama-server` as Bastion's local model server: start, probe, stop.

State lives in one directory (a JSON state file, the log, a lock), so two data directories never
share a server and a second `serve` finds the first instead of starting a twin.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from serving._errors import LocalServerError


class LocalServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    binary: Path
    model: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="None picks a free port")
    threads: int = Field(default=1, ge=1, description="-t 1: on 2 busy cores more threads slow it 15-250x")
    ctx_size: int = Field(default=8192, ge=512)
    parallel: int = Field(default=2, ge=1, description="slots batched continuously (-np)")
    alias: str = "smollm2-135m-instruct"
    startup_timeout_s: float = Field(default=120.0, gt=0)


class ProcessState(BaseModel):
    """What a started process leaves in its state file: at least its pid."""

    model_config = ConfigDict(frozen=True)

    pid: int


S = TypeVar("S", bound=ProcessState)


def read_state(state_file: Path, kind: type[S]) -> S | None:
    """The state of the process that wrote `state_file`, or None; a file left by a dead process (or
    one that no longer parses) is removed, so the next start begins clean."""
    if not state_file.exists():
        return None
    try:
        state = kind.model_validate_json(state_file.read_text())
    except ValueError:
        state_file.unlink(missing_ok=True)
        return None
    if not alive(state.pid):
        state_file.unlink(missing_ok=True)
        return None
    return state


class LocalServerState(ProcessState):
    port: int
    host: str
    url: str
    log_file: Path
    started_at: datetime
    command: list[str]

    def serves(self, model: Path) -> bool:
        """Whether this server was started with `model` (a server outlives a change of settings)."""
        return str(model) in self.command


class LocalServer:
    def __init__(self, config: LocalServerConfig) -> None:
        self.config = config
        self.state_file = config.state_dir / "llama-server.json"
        self.log_file = config.state_dir / "llama-server.log"
        self._lock = FileLock(str(config.state_dir / "llama-server.lock"))

    def status(self) -> LocalServerState | None:
        """The running server's state, or None; a state file left by a dead server is removed."""
        return read_state(self.state_file, LocalServerState)

    def healthy(self, state: LocalServerState) -> bool:
        try:
            return httpx.get(f"http://{state.host}:{state.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> LocalServerState:
        """Start the server (or return the one already running) and wait until `/health` says 200."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            running = self.status()
            if running is not None:
                self._wait_healthy(running, process=None)
                return running
            for path, what in (
                (self.config.binary, "llama-server binary"),
                (self.config.model, "model file"),
            ):
                if not path.exists():
                    raise LocalServerError(f"The {what} {path} is missing. Run `scripts/setup.sh` first.")
            port = self.config.port or free_port(self.config.host)
            if self.config.port is not None and not _port_free(self.config.host, port):
                raise LocalServerError(
                    f"Port {port} on {self.config.host} is already in use. Pick another with "
                    "`--port` (or BASTION_LOCAL_PORT), or leave it unset to choose a free port."
                )
            command = [
                str(self.config.binary),
                "--model",
                str(self.config.model),
                "--host",
                self.config.host,
                "--port",
                str(port),
                "--threads",
                str(self.config.threads),
                "--threads-batch",
                str(self.config.threads),
                "--ctx-size",
                str(self.config.ctx_size),
                "--parallel",
                str(self.config.parallel),
                "--kv-unified",
                "--alias",
                self.config.alias,
                "--metrics",
                "--no-webui",
            ]
            process = spawn(command, self.log_file, {"OMP_WAIT_POLICY": "passive"})
            state = LocalServerState(
                pid=process.pid,
                port=port,
                host=self.config.host,
                url=f"http://{self.config.host}:{port}/v1",
                log_file=self.log_file,
                started_at=datetime.now(UTC),
                command=command,
            )
            # Recorded before the wait: if this CLI call dies while the model loads, the next call
            # still finds (and can stop) the server instead of leaving it orphaned.
            self.state_file.write_text(state.model_dump_json(indent=2))
            try:
                self._wait_healthy(state, process=process)
            except BaseException:
                terminate(process.pid, timeout_s=5.0)
                self.state_file.unlink(missing_ok=True)
                raise
            return state

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the server; True if one was running. SIGTERM first, SIGKILL after timeout_s."""
        with self._lock:
            state = self.status()
            if state is None:
                return False
            terminate(state.pid, timeout_s=timeout_s)
            self.state_file.unlink(missing_ok=True)
            return True

    def _wait_healthy(self, state: LocalServerState, process: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise LocalServerError(
                    f"llama-server exited with code {process.returncode} while starting. "
                    f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            if process is None and not alive(state.pid):
                raise LocalServerError(f"llama-server (pid {state.pid}) died. See {self.log_file}.")
            if self.healthy(state):
                return
            time.sleep(0.2)
        raise LocalServerError(
            f"llama-server did not become healthy within {self.config.startup_timeout_s:.0f}s. "
            f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
        )


def spawn(command: list[str], log_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server process that outlives this CLI call, its output appended to `log_file`. A new
    session, so that stopping it (terminate) ends its whole process group."""
    with log_file.open("ab") as log:
        log.write(f"\n=== {datetime.now(UTC).isoformat()} {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it so it reads as dead.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate(pid: int, *, timeout_s: float, what: str = "llama-server") -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
    raise LocalServerError(f"{what} (pid {pid}) did not exit after SIGKILL.")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
