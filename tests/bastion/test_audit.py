"""The audit log's hash chain: every edit, deletion or reordering is detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit import AuditLog, AuditRecord, sha256_text


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
    log = AuditLog(path)
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
        # A forger who recomputes the edited record's own hash still breaks the next link (or the head).
        import hashlib

        prev, text = db.execute("SELECT prev_hash, record FROM audit WHERE seq = ?", (seq,)).fetchone()
        text = text.replace('"q', '"z')
        digest = hashlib.sha256((prev + text).encode()).hexdigest()
        db.execute("UPDATE audit SET record = ?, hash = ? WHERE seq = ?", (text, digest, seq))
    else:
        db.execute("DELETE FROM audit WHERE seq = ?", (n,))
    result = AuditLog(folder / "audit.sqlite").verify()
    assert not result.ok or result.head != head, tamper


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
