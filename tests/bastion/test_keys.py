"""API keys: shown once, stored hashed, revocable, and the only source of a Principal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.keys import KeyStore
from retrieval import Principal


def test_a_key_authenticates_as_its_principal_until_revoked(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite")
    key, info = keys.create("alice", frozenset({"legal", "hr"}))
    found = keys.authenticate(key)
    assert found is not None and found.principal == Principal(user="alice", groups=frozenset({"hr", "legal"}))
    assert found.role == "user" and info.key_id in key
    keys.revoke(info.key_id)
    assert keys.authenticate(key) is None
    with pytest.raises(ConfigError, match="already revoked"):
        keys.revoke(info.key_id)
    with pytest.raises(ConfigError, match="unknown"):
        keys.revoke("nope")


def test_wrong_or_malformed_keys_are_refused(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite")
    key, _ = keys.create("bob", frozenset(), role="admin")
    _, key_id, secret = key.split("_", 2)
    for bad in [
        "",
        "bst",
        f"bst_{key_id}",
        f"bst_{key_id}_{secret[:-1]}x",
        f"xyz_{key_id}_{secret}",
        f"bst_other_{secret}",
    ]:
        assert keys.authenticate(bad) is None, bad


def test_only_a_hash_of_the_secret_is_stored(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite")
    key, _ = keys.create("carol", frozenset({"finance"}))
    keys.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "keys.sqlite").iterdump())
    assert key.split("_", 2)[2] not in dump
    reopened = KeyStore(tmp_path / "keys.sqlite")
    assert [k.user for k in reopened.list()] == ["carol"] and reopened.authenticate(key) is not None


def test_bad_principals_cannot_get_keys(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite")
    with pytest.raises(ValueError):
        keys.create("", frozenset())


def test_the_cli_creates_lists_and_revokes_keys(tmp_path: Path) -> None:
    import json

    from tests.bastion.test_cli import bastion

    created = bastion("keys", "create", "--user", "dana", "--groups", "legal", "--json", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    assert record["key"].startswith("bst_") and record["groups"] == ["legal"]
    listed = json.loads(bastion("keys", "list", "--json", data_dir=tmp_path).stdout)["keys"]
    assert [k["user"] for k in listed] == ["dana"] and "key" not in listed[0]
    assert bastion("keys", "revoke", record["key_id"], data_dir=tmp_path).returncode == 0
    keys = KeyStore(tmp_path / "keys.sqlite")
    assert keys.authenticate(record["key"]) is None
    bad = bastion("keys", "create", "--user", "eve", "--groups", ",", data_dir=tmp_path)
    assert bad.returncode == 2 and "--groups" in bad.stderr
