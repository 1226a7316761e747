"""SGLang's gateway in front of N local llama-server replicas: the production topology on one machine.

Each replica is a `LocalServer` with its own state folder (`replica-0/`, `replica-1/`, …) under the
gateway's; the gateway's own state file records the replicas it fronts, so `stop` ends them all and a
second `start` finds the running set instead of starting a twin.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from serving._errors import LocalServerError
from serving._gateway import GatewayConfig, GatewayPolicy, validate_gateway_args
from serving._local import (
    LocalServer,
    LocalServerConfig,
    ProcessState,
    free_port,
    read_state,
    spawn,
    tail,
    terminate,
)


class LocalGatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    replica: LocalServerConfig = Field(description="the first replica; the others differ by state folder")
    replicas: int = Field(default=2, ge=1, le=16)
    state_dir: Path
    policy: GatewayPolicy = "cache_aware"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="None picks a free port")
    startup_timeout_s: float = Field(default=60.0, gt=0)


class LocalGatewayState(ProcessState):
    url: str
    port: int
    policy: GatewayPolicy
    model: str  # the replicas' served name: the gateway routes by the request's `model`
    workers: list[str]
    log_file: Path
    started_at: datetime
    command: list[str]


def smg_binary() -> Path:
    """The `smg` console script of this environment (a dependency), else the one on PATH."""
    beside = Path(sys.executable).parent / "smg"
    found = beside if beside.exists() else shutil.which("smg")
    if found is None:
        raise LocalServerError("SGLang's gateway (`smg`) is not installed. Run `scripts/setup.sh` first.")
    return Path(found)


def running_gateway(state_dir: Path) -> LocalGatewayState | None:
    """The gateway running from `state_dir`, or None; a state file left by a dead gateway is removed."""
    return read_state(state_dir / "gateway.json", LocalGatewayState)


class LocalGateway:
    def __init__(self, config: LocalGatewayConfig) -> None:
        self.config = config
        self.state_file = config.state_dir / "gateway.json"
        self.log_file = config.state_dir / "gateway.log"
        self._lock = FileLock(str(config.state_dir / "gateway.lock"))

    def replica_servers(self) -> list[LocalServer]:
        return [self._replica(self.config.state_dir / f"replica-{i}") for i in range(self.config.replicas)]

    def _replica(self, folder: Path) -> LocalServer:
        return LocalServer(self.config.replica.model_copy(update={"state_dir": folder}))

    def status(self) -> LocalGatewayState | None:
        """The running gateway's state, or None."""
        return running_gateway(self.config.state_dir)

    def start(self) -> LocalGatewayState:
        """Start the replicas, then the gateway in front of them, and wait until it routes a request."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            running = self.status()
            if running is not None:
                return running
            started: list[LocalServer] = []
            try:
                workers = []
                for server in self.replica_servers():
                    state = server.start()
                    started.append(server)
                    workers.append(f"http://{state.host}:{state.port}")
                return self._start_gateway(workers)
            except BaseException:
                for server in started:
                    with contextlib.suppress(LocalServerError):
                        server.stop()
                raise

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the gateway and every replica; True if anything was running."""
        with self._lock:
            stopped = False
            state = self.status()
            if state is not None:
                terminate(state.pid, timeout_s=timeout_s, what="smg")
                self.state_file.unlink(missing_ok=True)
                stopped = True
            # Every replica folder there is, not this config's count: `--stop` does not know how many
            # replicas `start` was given.
            folders = sorted(self.config.state_dir.glob("replica-*"))
            for folder in folders:
                stopped = self._replica(folder).stop(timeout_s=timeout_s) or stopped
            return stopped

    def _start_gateway(self, workers: list[str]) -> LocalGatewayState:
        host = self.config.host
        port = self.config.port or free_port(host)
        gateway = GatewayConfig(
            worker_urls=workers,
            policy=self.config.policy,
            host=host,
            port=port,
            metrics_host="127.0.0.1",
            metrics_port=free_port("127.0.0.1"),
            # A dead replica leaves the rotation within seconds, not the default minute.
            health_failure_threshold=2,
            health_check_interval_s=2,
            shutdown_grace_s=1,
            log_level="warn",
        )
        validate_gateway_args(gateway.args())
        command = [str(smg_binary()), *gateway.command()[1:]]
        process = spawn(command, self.log_file, {"NO_COLOR": "1"})
        state = LocalGatewayState(
            pid=process.pid,
            url=f"http://{host}:{port}/v1",
            port=port,
            policy=self.config.policy,
            model=self.config.replica.alias,
            workers=workers,
            log_file=self.log_file,
            started_at=datetime.now(UTC),
            command=command,
        )
        self.state_file.write_text(state.model_dump_json(indent=2))
        try:
            self._wait_routing(state, process)
        except BaseException:
            terminate(process.pid, timeout_s=5.0, what="smg")
            self.state_file.unlink(missing_ok=True)
            raise
        return state

    def _wait_routing(self, state: LocalGatewayState, process: subprocess.Popen[bytes]) -> None:
        """Ready once `/v1/models` through the gateway lists the replicas' model: smg registers
        workers asynchronously after it starts listening."""
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalServerError(
                    f"smg exited with code {process.returncode} while starting. "
                    f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = httpx.get(f"{state.url}/models", timeout=2.0)
                if response.status_code == 200 and response.json().get("data"):
                    return
            time.sleep(0.2)
        raise LocalServerError(
            f"smg did not route to its workers within {self.config.startup_timeout_s:.0f}s. "
            f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
        )
