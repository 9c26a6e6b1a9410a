"""Checks every relative link in README.md and docs/*.md: the file exists,
and a `#anchor`, where given, names a heading of that file (GitHub's rule:
lower case, punctuation but `-` and `_` dropped, spaces to `-`, a repeated
heading gets `-1`, `-2`, …). Links to the web are not followed (there is
no internet here, and the README links only inside the repository, but for
k3d's home page).
Usage: python .ci/check-links.py      (standard library only) ; exits 1 on any broken link.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def anchors(path):
    seen, found, fence = {}, set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        match = HEADING.match(line)
        if not match:
            continue
        text = re.sub(r"`|\*\*|\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", match.group(2))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


problems, checked = [], 0
for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
    text = page.read_text()
    # Links inside code blocks and code spans are not links.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        checked += 1
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        where = f"{page.relative_to(ROOT)}: ({target})"
        if not dest.exists():
            problems.append(f"{where}: no file {file}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
        if not dest.is_relative_to(ROOT):
            problems.append(f"{where}: outside the repository")

for problem in problems:
    print(f"check-links: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{checked} relative links in README.md and docs/*.md: every file and heading exists")
