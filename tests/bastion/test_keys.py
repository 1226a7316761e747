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


def test_keys_expire_record_their_last_use_and_rotate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as clock

    keys = KeyStore(tmp_path / "keys.sqlite")
    key, info = keys.create("frank", frozenset({"ops"}), expires_in_s=3600)
    assert info.expires_at is not None and info.last_used_at is None
    used = keys.authenticate(key)
    assert used is not None and used.last_used_at is not None
    assert keys.get(info.key_id).last_used_at == used.last_used_at  # type: ignore[union-attr]
    now = clock.time()
    monkeypatch.setattr("bastion.keys.time.time", lambda: now + 3601)
    assert keys.authenticate(key) is None  # expired
    monkeypatch.setattr("bastion.keys.time.time", lambda: now)

    new_key, new = keys.rotate(info.key_id)
    assert keys.authenticate(key) is None and keys.authenticate(new_key) is not None
    assert (new.user, new.groups, new.role) == ("frank", ["ops"], "user")
    assert new.expires_at is not None and abs((new.expires_at - new.created_at) - 3600) < 1
    old = keys.get(info.key_id)
    assert old is not None and old.revoked_at is not None and old.replaced_by == new.key_id
    with pytest.raises(ConfigError, match="nothing to rotate"):
        keys.rotate(info.key_id)


def test_no_key_may_stand_for_the_cli_operator(tmp_path: Path) -> None:
    """Documents indexed from the CLI without groups belong to its operator (`local`): a key named so
    would read them all."""
    keys = KeyStore(tmp_path / "keys.sqlite")
    early, _ = keys.create("local", frozenset({"staff"}))  # made before the name was reserved
    reserved = KeyStore(tmp_path / "keys.sqlite", reserved_users=frozenset({"local"}))
    with pytest.raises(ConfigError, match="operator"):
        reserved.create("local", frozenset({"staff"}))
    assert reserved.authenticate(early) is None


def test_an_old_key_store_gains_the_new_columns(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "keys.sqlite", isolation_level=None)
    db.execute(
        "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, user TEXT NOT NULL, "
        "groups TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)"
    )
    db.close()
    keys = KeyStore(tmp_path / "keys.sqlite")
    key, _ = keys.create("gina", frozenset())
    assert keys.authenticate(key) is not None


def test_the_cli_rotates_expires_and_audits_key_changes(tmp_path: Path) -> None:
    import json

    from tests.bastion.test_cli import bastion

    made = bastion("keys", "create", "--user", "hal", "--expires", "90d", "--json", data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert 89 * 86400 < created["expires_at"] - created["created_at"] <= 90 * 86400
    rotated = json.loads(bastion("keys", "rotate", created["key_id"], "--json", data_dir=tmp_path).stdout)
    assert rotated["key"] != created["key"] and rotated["user"] == "hal"
    assert bastion("keys", "revoke", rotated["key_id"], data_dir=tmp_path).returncode == 0
    refused = bastion("keys", "create", "--user", "local", data_dir=tmp_path)
    assert refused.returncode == 1 and "operator" in refused.stderr
    bad = bastion("keys", "create", "--user", "ivy", "--expires", "soon", data_dir=tmp_path)
    assert bad.returncode == 2 and "--expires" in bad.stderr
    records = [json.loads(x) for x in bastion("audit", "export", data_dir=tmp_path).stdout.splitlines()]
    assert [(r["event"], r["target"]) for r in records] == [
        ("key_created", created["key_id"]),
        ("key_rotated", rotated["key_id"]),
        ("key_revoked", rotated["key_id"]),
    ]
    assert f"replaces {created['key_id']}" in records[1]["detail"]
    assert bastion("audit", "verify", data_dir=tmp_path).returncode == 0


@pytest.mark.llm
def test_the_data_directory_and_its_databases_are_private(tmp_path: Path, llm_url: str) -> None:
    from tests.bastion.test_cli import bastion

    data = tmp_path / "fresh" / "data"
    assert bastion("keys", "create", "--user", "kim", data_dir=data).returncode == 0
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("keys.sqlite", "audit.sqlite", "secrets/audit.key"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    # Indexed text and conversations too: the index, its manifest and the threads database.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pay.md").write_text("# Pay\n\nSalaries are paid on the 25th.\n")
    assert bastion("index", str(docs), data_dir=data).returncode == 0
    chatted = bastion("chat", "Hello.", "--json", data_dir=data, model_url=llm_url)
    assert chatted.returncode == 0 and (data / "threads.sqlite").exists(), chatted.stderr
    made = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name.startswith("manifest") for p in made) and len(made) > 5
    for path in made:
        assert path.stat().st_mode & 0o077 == 0, f"{path.relative_to(data)} is readable by others"
    for path in [p for p in data.rglob("*") if p.is_dir()]:
        assert path.stat().st_mode & 0o077 == 0, f"{path.relative_to(data)}/ is open to others"
