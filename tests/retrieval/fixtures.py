"""Small documents of every supported format, made on the spot (nothing binary is committed)."""

from __future__ import annotations

import io
from pathlib import Path


def make_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A minimal valid PDF with one text line per entry, written by hand (no PDF writer needed)."""
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        content_id = page_ids[i] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += [f"({escaped}) Tj", "T*"]
        ops.append("ET")
        stream = "\n".join(ops).encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    path.write_bytes(out.getvalue())
    return path


def make_docx(path: Path) -> Path:
    from docx import Document

    document = Document()
    document.add_heading("Travel Policy", level=1)
    document.add_paragraph("Staff book travel through the approved agency.")
    document.add_heading("Per Diem", level=2)
    document.add_paragraph("The daily allowance abroad is NOK 850.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Country", "Rate"
    table.cell(1, 0).text, table.cell(1, 1).text = "Sweden", "NOK 900"
    document.save(str(path))
    return path


def make_png(path: Path, width: int = 3, height: int = 2) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), "white").save(path, format="PNG")
    return path


HTML = """<!doctype html><html><head><title>t</title><style>p{color:red}</style></head>
<body><nav><a href="/">Home</a> | <a href="/x">Menu item</a></nav>
<main><h1>Visitor Policy</h1><p>Visitors must sign in at reception.</p>
<h2>Badges</h2><ul><li>Badges are returned on leaving.</li><li>Lost badges cost NOK 200.</li></ul>
<table><tr><th>Zone</th><th>Escort</th></tr><tr><td>Server room</td><td>Always</td></tr></table>
<script>var tracking = 1;</script></main><footer>Copyright</footer></body></html>"""

PYTHON = '''"""Vault helpers."""

import os

LIMIT = 3


@staticmethod
def open_vault(path):
    """Open the vault at path."""
    return os.path.exists(path)


class Vault:
    """A password vault."""

    def lock(self):
        return True

    async def sync(self):
        return None
'''
