"""SGLang launch profiles, validated against SGLang 0.5.23's real flag list (no CUDA needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from serving import PROFILES, LaunchConfigError, SGLangFlags, SGLangProfile, launch_commands, server_args_of

FLAGS_FILE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "sglang-0.5.23-server-flags.json"
)


@pytest.fixture(scope="module")
def flags() -> SGLangFlags:
    if not FLAGS_FILE.exists():
        pytest.skip(f"SGLang's flag list is not beside this checkout ({FLAGS_FILE})")
    return SGLangFlags.from_file(FLAGS_FILE)


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("replicas", [1, 2])
def test_every_profile_produces_valid_commands(flags: SGLangFlags, name: str, replicas: int) -> None:
    commands = launch_commands(PROFILES[name], replicas=replicas, api_key="${KEY}")
    for command in commands[:replicas]:
        args = server_args_of(command)
        flags.validate(args)
        assert args[args.index("--context-length") + 1] == "262144", "256Ki, not SGLang's decimal 256k"
        assert "--enable-cache-report" in args and args[args.index("--reasoning-parser") + 1] == "mistral"
    if replicas > 1:
        router = commands[-1]
        assert router[router.index("--policy") + 1] == "cache_aware"
        ports = [c[c.index("--port") + 1] for c in commands[:replicas]]
        assert len(set(ports)) == replicas
        gpus = [c[0] for c in commands[:replicas]]
        assert gpus[0] != gpus[1] and all(g.startswith("CUDA_VISIBLE_DEVICES=") for g in gpus)


def test_optional_features_are_valid_flags(flags: SGLangFlags) -> None:
    profile = SGLangProfile(
        name="custom", hardware="8x H200", tp_size=8, gpus=8, ep_size=8, attn_dp_size=2,
        mem_fraction_static=0.85, chunked_prefill_size=8192,
        speculative="EAGLE", speculative_draft_model_path="org/mistral-small-4-eagle",
    )  # fmt: skip
    flags.validate(server_args_of(launch_commands(profile)[0]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tp", "2"], "--tp: not an SGLang server flag (did you mean --tp-size"),
        (["--reasoning-parser", "magistral"], "--reasoning-parser magistral: not one of"),
        (["--enable-dp-attention"], "--enable-dp-attention: deprecated"),
        (["--tokenizer-mode", "mistral"], "--tokenizer-mode mistral: not one of"),
        (["--model-path"], "--model-path: needs a value"),
    ],
)
def test_bad_commands_name_the_flag(flags: SGLangFlags, args: list[str], message: str) -> None:
    with pytest.raises(LaunchConfigError) as info:
        flags.validate(args)
    assert message in str(info.value)


def test_speculative_decoding_needs_a_draft_model() -> None:
    with pytest.raises(LaunchConfigError, match="draft model"):
        SGLangProfile(name="x", hardware="x", tp_size=1, gpus=1, speculative="EAGLE").server_args()


def test_an_installed_sglang_parser_is_read_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SGLang needs CUDA and cannot be installed here, so a stand-in package with the same entry point
    # (`ServerArgs.add_cli_args(parser)`) exercises the code path that reads an installed parser.
    package = tmp_path / "sglang" / "srt"
    package.mkdir(parents=True)
    (tmp_path / "sglang" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "server_args.py").write_text(
        "class ServerArgs:\n"
        "    @staticmethod\n"
        "    def add_cli_args(parser):\n"
        "        parser.add_argument('--tp-size', '--tensor-parallel-size', type=int, default=1)\n"
        "        parser.add_argument('--enable-metrics', action='store_true')\n"
        "        parser.add_argument('--reasoning-parser', choices=['mistral', 'qwen3'])\n"
        "        parser.add_argument('--enable-dp-attention', action='store_true', help='Deprecated.')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        flags = SGLangFlags.from_installed()
    finally:
        for name in [n for n in sys.modules if n == "sglang" or n.startswith("sglang.")]:
            del sys.modules[name]
    assert flags is not None and flags.source == "the installed sglang"
    flags.validate(["--tensor-parallel-size", "2", "--enable-metrics", "--reasoning-parser", "mistral"])
    with pytest.raises(LaunchConfigError, match="--enable-dp-attention: deprecated"):
        flags.validate(["--enable-dp-attention"])
    with pytest.raises(LaunchConfigError, match="--reasoning-parser magistral"):
        flags.validate(["--reasoning-parser", "magistral"])


def test_without_sglang_installed_there_is_no_installed_parser() -> None:
    assert SGLangFlags.from_installed() is None
