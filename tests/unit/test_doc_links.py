"""Every relative link in README.md, CHANGELOG.md and docs/ (docs/reference/ too) reaches a file that exists, and
its #anchor a heading there; so does every page and anchor under docs/ that the code cites in a comment (sections
move between documents: a link left behind fails here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCED = re.compile(r"(?ms)^```.*?^```")
CITED = re.compile(r"\bdocs/[\w./-]*?\.md(?:#[\w-]+)?")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCED.sub("", path.read_text())
    return {_slug(match) for match in re.findall(r"(?m)^#{1,6} (.+)$", text)}


def test_every_relative_link_and_anchor_exists():
    broken = []
    for document in [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = re.sub(r"`[^`\n]*`", "", FENCED.sub("", document.read_text()))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            destination = (document.parent / path).resolve() if path else document
            if not destination.exists():
                broken.append(f"{document.name}: {target} (no such file)")
            elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
                broken.append(f"{document.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_document_the_code_cites_exists():
    broken = []
    for folder in ("src", "tests", "bench", "soak", "scripts"):
        for source in sorted((ROOT / folder).rglob("*.py")):
            for cited in CITED.findall(source.read_text()):
                path, _, anchor = cited.partition("#")
                destination = ROOT / path
                where = source.relative_to(ROOT)
                if not destination.exists():
                    broken.append(f"{where}: {cited} (no such file)")
                elif anchor and anchor not in _anchors(destination):
                    broken.append(f"{where}: {cited} (no such heading)")
    assert not broken, "\n".join(broken)
