"""The documentation is self-contained: every relative link in the README and docs/ resolves to a file in
the repository (nothing points above the clone, e.g. at a design document that is not shipped), and the
commands in their code blocks use the virtualenv's python."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_resolves_inside_the_repository():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same page
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_doc_names_a_design_document_outside_the_repository():
    assert [d.name for d in DOCS if "DESIGN.md" in d.read_text()] == []


def test_commands_in_code_blocks_use_the_virtualenvs_python():
    bare = []
    for doc in DOCS:
        for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", doc.read_text(), re.S):
            for line in block.splitlines():
                if re.match(r"^\s*(python3?|manage\.py)\s", line):
                    bare.append(f"{doc.relative_to(ROOT)}: {line.strip()}")
    assert bare == []
