"""The audit log's hash chain: every edit, deletion or reordering is detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.api._gate import FailureCounter
from bastion.audit import Anchor, AuditLog, AuditRecord, audit_key, sha256_text


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        user=f"u{i % 3}",
        groups=["hr"],
        agent="bastion-qa",
        question_sha256=sha256_text(f"q{i}"),
        question=f"q{i}",
        chunk_ids=[f"c{i}"],
        efforts=["none"],
        prompt_tokens=10 + i,
        answer_sha256=sha256_text(f"a{i}"),
    )


def _log(path: Path, n: int) -> AuditLog:
    """A log in `path`'s folder, keyed as `bastion` keys it for that data directory."""
    log = AuditLog(path, audit_key(path.parent, create=True))
    for i in range(n):
        log.append(_record(i))
    return log


def test_an_untouched_log_verifies_and_exports_in_order(tmp_path: Path) -> None:
    log = _log(tmp_path / "audit.sqlite", 5)
    result = log.verify()
    assert result.ok and result.records == 5 and len(result.head) == 64
    assert [r["seq"] for r in log.records()] == [1, 2, 3, 4, 5]
    first_time = next(log.records())["time"]
    assert len(list(log.records(since=first_time + 1e9))) == 0


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 8),
    tamper=st.sampled_from(["edit", "delete", "swap", "edit_and_rehash", "truncate_head"]),
    at=st.integers(0, 7),
)
def test_any_tampering_is_detected(n: int, tamper: str, at: int) -> None:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    log = _log(folder / "audit.sqlite", n)
    head = log.verify().head
    seq = at % n + 1
    db = sqlite3.connect(folder / "audit.sqlite", isolation_level=None)
    if tamper == "edit":
        db.execute("UPDATE audit SET record = replace(record, '\"u', '\"x') WHERE seq = ?", (seq,))
    elif tamper == "delete":
        db.execute("DELETE FROM audit WHERE seq = ?", (seq,))
    elif tamper == "swap":
        other = seq % n + 1
        rows = {
            s: r for s, r in db.execute("SELECT seq, record FROM audit WHERE seq IN (?, ?)", (seq, other))
        }
        db.execute("UPDATE audit SET record = ? WHERE seq = ?", (rows[other], seq))
        db.execute("UPDATE audit SET record = ? WHERE seq = ?", (rows[seq], other))
    elif tamper == "edit_and_rehash":
        # A forger without the key can only guess at the hash: plain SHA-256 is what they would try.
        import hashlib

        prev, text = db.execute("SELECT prev_hash, record FROM audit WHERE seq = ?", (seq,)).fetchone()
        text = text.replace('"q', '"z')
        digest = hashlib.sha256((prev + text).encode()).hexdigest()
        db.execute("UPDATE audit SET record = ?, hash = ? WHERE seq = ?", (text, digest, seq))
    else:
        db.execute("DELETE FROM audit WHERE seq = ?", (n,))
    result = _reopen(folder).verify()
    assert not result.ok or result.head != head, tamper


def _reopen(folder: Path) -> AuditLog:
    return AuditLog(folder / "audit.sqlite", audit_key(folder, create=False), create=False)


def test_a_chain_recomputed_without_the_key_fails(tmp_path: Path) -> None:
    import hashlib
    import hmac

    _log(tmp_path / "audit.sqlite", 4).close()
    db = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    rows = db.execute("SELECT seq, record FROM audit ORDER BY seq").fetchall()
    for guess in (b"", b"another key"):
        prev = "0" * 64
        for seq, text in rows:
            forged = text.replace('"q', '"z')
            digest = (
                hmac.new(guess, (prev + forged).encode(), hashlib.sha256).hexdigest()
                if guess
                else (hashlib.sha256((prev + forged).encode()).hexdigest())
            )
            db.execute(
                "UPDATE audit SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (forged, prev, digest, seq),
            )
            prev = digest
        result = _reopen(tmp_path).verify()
        assert not result.ok and all("keyed hash" in p for p in result.problems)


def test_records_cut_off_after_an_anchor_are_detected(tmp_path: Path) -> None:
    log = _log(tmp_path / "audit.sqlite", 6)
    anchor = log.head()
    assert anchor.seq == 6 and log.verify([anchor]).ok
    log.append(_record(6))
    assert log.verify([anchor]).ok  # growing after an anchor is fine
    db = sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None)
    db.execute("DELETE FROM audit WHERE seq >= 5")  # the last three, so the chain itself still links
    assert log.verify().ok  # without the anchor a cut at the end is invisible…
    cut = log.verify([anchor])
    assert not cut.ok and "anchored record 6 is missing" in cut.problems[0]  # …with it, it is not
    rewritten = Anchor(seq=3, hash="f" * 64, time=anchor.time)
    assert "rewritten" in log.verify([rewritten]).problems[0]


def test_the_cli_verifies_and_exports_and_fails_on_tampering(tmp_path: Path) -> None:
    from tests.bastion.test_cli import bastion

    log = _log(tmp_path / "audit.sqlite", 3)
    log.close()
    ok = bastion("audit", "verify", "--json", data_dir=tmp_path)
    assert ok.returncode == 0 and '"records": 3' in ok.stdout
    exported = bastion("audit", "export", "--since", "2000-01-01", data_dir=tmp_path)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["seq"] for r in lines] == [1, 2, 3] and lines[0]["question"] == "q0"
    sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None).execute(
        "DELETE FROM audit WHERE seq = 2"
    )
    broken = bastion("audit", "verify", data_dir=tmp_path)
    assert broken.returncode == 1 and "record 3" in broken.stderr and "tampered" in broken.stderr


def test_the_cli_anchors_and_verify_anchor_catches_a_cut(tmp_path: Path) -> None:
    from tests.bastion.test_cli import bastion

    _log(tmp_path / "audit.sqlite", 5).close()
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    anchors.parent.mkdir()
    assert bastion("audit", "anchor", "--to", str(anchors), data_dir=tmp_path).returncode == 0
    printed = bastion("audit", "anchor", data_dir=tmp_path)
    assert json.loads(printed.stdout)["seq"] == 5
    assert bastion("audit", "verify", "--anchor", str(anchors), data_dir=tmp_path).returncode == 0
    sqlite3.connect(tmp_path / "audit.sqlite", isolation_level=None).execute(
        "DELETE FROM audit WHERE seq > 3"
    )
    assert bastion("audit", "verify", data_dir=tmp_path).returncode == 0  # the chain alone still links
    cut = bastion("audit", "verify", "--anchor", str(anchors), data_dir=tmp_path)
    assert cut.returncode == 1 and "anchored record 5 is missing" in cut.stderr


def test_verifying_a_missing_log_or_without_its_key_fails(tmp_path: Path) -> None:
    from tests.bastion.test_cli import bastion

    missing = bastion("audit", "verify", data_dir=tmp_path)
    assert missing.returncode == 1 and "no audit log" in missing.stderr.lower()
    assert not (tmp_path / "audit.sqlite").exists()  # checking did not create one
    _log(tmp_path / "audit.sqlite", 2).close()
    (tmp_path / "secrets" / "audit.key").unlink()
    keyless = bastion("audit", "verify", data_dir=tmp_path)
    assert keyless.returncode == 1 and "audit.key is missing" in keyless.stderr
    assert (tmp_path / "secrets").stat().st_mode & 0o077 == 0


def test_a_damaged_audit_database_is_named_with_what_to_do(tmp_path: Path) -> None:
    from tests.bastion.test_cli import bastion

    _log(tmp_path / "audit.sqlite", 2).close()
    for extra in tmp_path.glob("audit.sqlite-*"):
        extra.unlink()
    (tmp_path / "audit.sqlite").write_bytes(b"this is not a database" * 100)
    damaged = bastion("audit", "verify", data_dir=tmp_path)
    assert damaged.returncode == 1 and "is damaged" in damaged.stderr and "Traceback" not in damaged.stderr


def test_refused_requests_are_recorded_once_a_minute_per_client_with_the_count() -> None:
    now = [1000.0]
    counter = FailureCounter(every_s=60.0, clock=lambda: now[0])
    assert counter.note("10.0.0.1 ") == 1  # the first refusal from a client is recorded at once
    assert [counter.note("10.0.0.1 ") for _ in range(4)] == [None] * 4  # the rest of the burst waits
    assert counter.note("10.0.0.2 ") == 1  # another client has its own minute
    now[0] += 59.9
    assert counter.note("10.0.0.1 ") is None
    now[0] += 0.1
    assert counter.note("10.0.0.1 ") == 6  # a minute on: one record that counts everything since
    assert counter.note("10.0.0.1 key1") == 1  # a known key refused (403) is its own client
