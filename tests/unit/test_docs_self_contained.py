"""The repository refers to nothing outside itself, and its documentation's links resolve.

Every tracked text file (README, docs/, deploy/, sources and their
docstrings, tests, configuration) is scanned for references that leave the
repository: a path through `../shared` or into a `shared/` notes folder, an
absolute path into a home or work directory, and a markdown file named that
the repository does not hold (notes kept somewhere else). Every relative
link in README.md and in the markdown under docs/ and deploy/ must name a
file of the repository, and its `#anchor`, when it has one, a heading of
that file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OUTSIDE_PATHS = re.compile(
    r"\.\./shared\b"  # the folder beside the repository
    r"|(?<![\w.-])shared/[\w.-]+\.md"  # a notes file in it, named without ../
    r"|(?<![\w.~-])/(?:work|home|root|Users)/"  # an absolute path into someone's tree
    r"|(?<![\w])~/"
)
MARKDOWN_NAME = re.compile(r"(?<![\w./-])(\w[\w./-]*\.md)\b")
URL = re.compile(r"\b[a-z][a-z+.-]*://\S+")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _tracked() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def _text(name: str) -> str | None:
    data = (ROOT / name).read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _texts() -> dict[str, str]:
    # This file names the very patterns it looks for.
    itself = Path(__file__).resolve().relative_to(ROOT).as_posix()
    texts = {name: _text(name) for name in _tracked() if name != itself}
    return {name: text for name, text in texts.items() if text is not None}


def _documentation() -> list[str]:
    return [
        name
        for name in _tracked()
        if name.endswith(".md") and (name == "README.md" or name.startswith(("docs/", "deploy/")))
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"#{1,6} (.+)", line)
        if heading and not in_code:
            slug = _slug(heading.group(1))
            seen = counts.get(slug, 0)
            anchors.add(slug if seen == 0 else f"{slug}-{seen}")
            counts[slug] = seen + 1
    return anchors


def test_the_scan_sees_the_documentation_and_the_sources() -> None:
    texts = _texts()
    assert "README.md" in texts and "docs/architecture.md" in texts
    assert any(name.startswith("actors/") and name.endswith(".py") for name in texts)


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    found = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for name, text in _texts().items()
        for match in OUTSIDE_PATHS.finditer(text)
    ]
    assert found == []


def test_every_markdown_file_named_is_in_the_repository() -> None:
    tracked = set(_tracked())
    basenames = {Path(name).name for name in tracked}
    dangling = []
    for name, text in _texts().items():
        for match in MARKDOWN_NAME.finditer(URL.sub("", text)):
            named = match.group(1)
            here = (ROOT / name).parent / named
            if not ((ROOT / named).is_file() or here.is_file() or named in basenames):
                dangling.append(f"{name}: {named}")
    assert dangling == []


@pytest.mark.parametrize("doc", _documentation())
def test_every_relative_link_names_a_file_of_the_repository(doc: str) -> None:
    source = ROOT / doc
    broken = []
    for match in LINK.finditer(source.read_text(encoding="utf-8")):
        target = match.group(1)
        if URL.match(target) or target.startswith("mailto:"):
            continue
        path_text, _, anchor = target.partition("#")
        path = (source.parent / path_text).resolve() if path_text else source
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and path.is_file() and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert broken == []
