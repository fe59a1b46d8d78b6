"""The README: short, opening with the two commands that work on a fresh machine, and every link
in it reaching a file (and heading) of the checkout. The docs/ pages' own links are checked by
`mkdocs build --strict`, which `./dev.sh test` runs before this suite; the README is outside
MkDocs' docs folder, so its links are checked here."""
from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: The README's limit (issue 29): what it is, install, the two commands, TAU, your own .tflite,
#: where the outputs go, links; everything else is a docs/ page.
MAX_README_LINES = 150
#: [text](target): a Markdown inline link, not an image.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def heading_ids(markdown_text: str) -> set[str]:
    """The anchors of a page's headings, as MkDocs' toc extension (and, for these headings, GitHub)
    makes them: code spans and emphasis dropped, then slugified."""
    body = FENCE.sub("", markdown_text)
    titles = re.findall(r"^#{1,6} +(.+?) *$", body, re.M)
    return {slugify(re.sub(r"[`*]", "", title), "-") for title in titles}


def test_readme_is_at_most_150_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move text to a docs/ page"


def test_readme_opens_with_demo_and_test_commands():
    text = README.read_text(encoding="utf-8")
    before_block, _, _ = text.partition("```")
    assert [line for line in before_block.splitlines() if line.strip()] == [text.splitlines()[0]], \
        "only the title may come before the commands"
    commands = [line.split("#")[0].split() for line in FENCE.search(text).group(1).splitlines()]
    assert commands == [["./dev.sh", "demo"], ["./dev.sh", "test"]]


def test_readme_links_reach_files_and_headings():
    text = README.read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(FENCE.sub("", text)) if not re.match(r"[a-z]+:", t)]
    assert targets, "the README links to its docs pages"
    broken = []
    for target in targets:
        path, _, anchor = target.partition("#")
        page = REPO / path if path else README
        if not page.is_file():
            broken.append(f"{target}: no file {path}")
        elif anchor and anchor not in heading_ids(page.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{anchor} in {path or 'README.md'}")
    assert not broken, "\n".join(broken)
