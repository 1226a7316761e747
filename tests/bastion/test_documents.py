"""Documents through the API: administrators only, size- and type-checked uploads kept inside the
data directory, searchable at once by the groups given, and gone from search once deleted."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from tests.bastion.conftest import Api

pytestmark = pytest.mark.llm

POLICY = b"# Drone Policy\n\nDrones may fly over the Halvorsen yard only with a permit from Facilities.\n"


def _auth(api: Api, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.keys[who]}"}


def _upload(api: Api, who: str, name: str, data: bytes, groups: str = "staff") -> httpx.Response:
    files = {"file": (name, data, "application/octet-stream")}
    return httpx.post(
        f"{api.url}/v1/documents", files=files, data={"groups": groups}, headers=_auth(api, who), timeout=120
    )


def _search(api: Api, who: str, query: str) -> list[dict[str, object]]:
    response = httpx.post(f"{api.url}/v1/search", json={"query": query, "limit": 5}, headers=_auth(api, who))
    results: list[dict[str, object]] = response.json()["results"]
    return results


def test_an_uploaded_document_is_searchable_by_its_groups_until_deleted(api: Api) -> None:
    created = _upload(api, "root", "drone-policy.md", POLICY)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["name"] == "drone-policy.md" and doc["groups"] == ["staff"] and doc["chunks"] >= 1
    assert any("Drones may fly" in str(r["text"]) for r in _search(api, "alice", "drone permit Facilities"))
    assert not any("Drones" in str(r["text"]) for r in _search(api, "mallory", "drone permit Facilities"))

    listed = httpx.get(f"{api.url}/v1/documents", headers=_auth(api, "root")).json()["documents"]
    assert doc["id"] in [d["id"] for d in listed]
    again = httpx.post(f"{api.url}/v1/documents/{doc['id']}/reindex", headers=_auth(api, "root")).json()
    assert again["chunks_written"] == 0 and again["sha256"] == doc["sha256"]  # unchanged: nothing embedded

    assert httpx.delete(f"{api.url}/v1/documents/{doc['id']}", headers=_auth(api, "root")).status_code == 200
    assert not any("Drones" in str(r["text"]) for r in _search(api, "alice", "drone permit Facilities"))
    assert httpx.get(f"{api.url}/v1/documents/{doc['id']}", headers=_auth(api, "root")).status_code == 404


def test_only_administrators_manage_documents(api: Api) -> None:
    assert _upload(api, "alice", "x.md", POLICY).status_code == 403
    assert httpx.get(f"{api.url}/v1/documents", headers=_auth(api, "alice")).status_code == 403
    assert httpx.get(f"{api.url}/v1/documents").status_code == 401


def test_names_are_made_safe_and_stay_inside_the_data_directory(api: Api) -> None:
    created = _upload(api, "root", "../../../etc/evil name.md", POLICY)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["name"] == "evil_name.md"
    assert doc["source"].startswith(str((api.data_dir / "documents").resolve()) + "/")
    httpx.delete(f"{api.url}/v1/documents/{doc['id']}", headers=_auth(api, "root"))


def test_wrong_types_oversize_and_empty_uploads_are_refused_and_leave_nothing(api: Api) -> None:
    before = httpx.get(f"{api.url}/v1/documents", headers=_auth(api, "root")).json()["documents"]
    assert _upload(api, "root", "report.pdf", b"just text, not a PDF").status_code == 415
    assert _upload(api, "root", "photo.png", b"\xff\xd8\xff\xe0 a jpeg").status_code == 415
    assert _upload(api, "root", "notes.md", b"\x00\x01binary").status_code == 415
    assert _upload(api, "root", "tool.exe", b"MZ").status_code == 415
    fake_docx = io.BytesIO()
    with zipfile.ZipFile(fake_docx, "w") as archive:
        archive.writestr("hello.txt", "not word")
    assert _upload(api, "root", "memo.docx", fake_docx.getvalue()).status_code == 415
    assert _upload(api, "root", "empty.md", b"").status_code == 400
    assert _upload(api, "root", "big.md", b"a" * (26 << 20)).status_code == 413  # limit: 25 MB
    assert _upload(api, "root", "bad-groups.md", POLICY, groups="no spaces allowed").status_code == 400
    after = httpx.get(f"{api.url}/v1/documents", headers=_auth(api, "root")).json()["documents"]
    assert after == before
    leftovers = [p for p in (api.data_dir / "documents").glob(".upload-*")]
    assert leftovers == []
