"""The README is a map of the tree: every path it names exists, every top-level folder is on it,
and every link in the README and in ``docs/`` leads to a file of the project."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAP_HEADING = "## Where each piece lives"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def map_rows() -> List[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def tracked_top_level() -> List[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = {line.split("/", 1)[0] for line in listed.splitlines() if "/" in line}
    return sorted(name for name in folders if not name.startswith("."))


def test_readme_stays_a_short_map() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_every_path_on_the_map_exists() -> None:
    rows = map_rows()
    assert len(rows) >= 10
    for row in rows:
        first_cell = row.split("|")[1]
        for path in re.findall(r"`([^`]+)`", first_cell):
            assert (ROOT / path.rstrip("/")).exists(), f"README map names {path}, which is not in the tree"


def test_every_top_level_folder_is_on_the_map() -> None:
    named = " ".join(row.split("|")[1] for row in map_rows())
    missing = [folder for folder in tracked_top_level() if f"`{folder}/" not in named]
    assert not missing, f"top-level folders missing from the README map: {missing}"


def test_links_of_the_readme_and_docs_lead_to_files() -> None:
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) > 5
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
