"""SEARCH/REPLACE edit blocks: parse them, apply them, and say exactly what failed.

The format (aider's, which models know well):

    path/to/file.py
    <<<<<<< SEARCH
    lines to find
    =======
    lines to put instead
    >>>>>>> REPLACE

An empty SEARCH section on a file that does not exist creates it (the whole file).
Each block is applied exactly, then, failing that, tolerating whitespace (trailing
spaces and a uniform change of indentation). A reply is applied all or nothing: if
any block fails, nothing is applied and the failures are listed, so a partial apply is
never silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import Refused

SEARCH = re.compile(r"^\s*<{5,9} SEARCH\s*$")
DIVIDER = re.compile(r"^\s*={5,9}\s*$")
REPLACE = re.compile(r"^\s*>{5,9} REPLACE\s*$")
FENCE = re.compile(r"^\s*```")


@dataclass(frozen=True)
class EditBlock:
    path: str
    search: str
    replace: str


class MalformedReply(Refused):
    """The reply cannot be applied; the message is what the model is told to fix."""


def _path_before(lines: list[str], index: int, floor: int) -> str:
    """The path written just above a SEARCH marker, never looking into the previous block."""
    for line in reversed(lines[max(floor, index - 3) : index]):
        candidate = line.strip().strip("`*").strip()
        if candidate and not FENCE.match(line) and " " not in candidate:
            return candidate
    return ""


def parse_blocks(text: str) -> list[EditBlock]:
    lines = text.splitlines()
    blocks: list[EditBlock] = []
    i = floor = 0
    while i < len(lines):
        if not SEARCH.match(lines[i]):
            i += 1
            continue
        path = _path_before(lines, i, floor)
        if not path:
            raise MalformedReply(
                f"the SEARCH block at line {i + 1} has no file path on the line before it"
            )
        j = i + 1
        while j < len(lines) and not DIVIDER.match(lines[j]) and not SEARCH.match(lines[j]):
            j += 1
        k = j + 1
        while k < len(lines) and not REPLACE.match(lines[k]) and not SEARCH.match(lines[k]):
            k += 1
        # A marker of the next block before this one closed means this one never closed.
        if (
            j >= len(lines)
            or k >= len(lines)
            or not DIVIDER.match(lines[j])
            or not REPLACE.match(lines[k])
        ):
            raise MalformedReply(
                f"the block for {path} starting at line {i + 1} is not closed with "
                "======= and >>>>>>> REPLACE"
            )
        search = "\n".join(lines[i + 1 : j])
        replace = "\n".join(lines[j + 1 : k])
        blocks.append(
            EditBlock(path, search + "\n" if search else "", replace + "\n" if replace else "")
        )
        i = floor = k + 1
    return blocks


def _line_starts(content: str, search: str) -> list[int]:
    """Where `search` occurs beginning at the start of a line (a match must be whole lines)."""
    found, at = [], content.find(search)
    while at != -1:
        if at == 0 or content[at - 1] == "\n":
            found.append(at)
        at = content.find(search, at + 1)
    return found


def _tolerant(content: str, search: str, replace: str) -> tuple[str | None, int]:
    """Replace a whitespace-tolerant match; returns (new content or None, match count)."""
    lines = content.splitlines(keepends=True)
    wanted = [line.strip() for line in search.splitlines()]
    while wanted and not wanted[-1]:
        wanted.pop()
    if not wanted:
        return None, 0
    spans = [
        start
        for start in range(len(lines) - len(wanted) + 1)
        if [line.strip() for line in lines[start : start + len(wanted)]] == wanted
    ]
    if len(spans) != 1:
        return None, len(spans)
    start = spans[0]
    found = lines[start : start + len(wanted)]
    first_found = next(line for line in found if line.strip())
    first_search = next(line for line in search.splitlines() if line.strip())
    have = len(first_found) - len(first_found.lstrip())
    had = len(first_search) - len(first_search.lstrip())
    shift = have - had
    new_lines = []
    for line in replace.splitlines():
        if shift > 0 and line.strip():
            line = " " * shift + line
        elif shift < 0 and line.strip():
            cut = min(-shift, len(line) - len(line.lstrip()))
            line = line[cut:]
        new_lines.append(line + "\n")
    return "".join(lines[:start] + new_lines + lines[start + len(wanted) :]), 1


def apply_blocks(files: dict[str, str | None], blocks: list[EditBlock]) -> dict[str, str]:
    """Apply every block to `files` (path -> content, None when it does not exist yet).

    Returns the changed files, or raises MalformedReply listing each block that failed.
    """
    if not blocks:
        raise MalformedReply("the reply holds no SEARCH/REPLACE block")
    current = dict(files)
    problems: list[str] = []
    for number, block in enumerate(blocks, 1):
        label = f"block {number} ({block.path})"
        if block.path not in current:
            problems.append(f"{label}: {block.path} is not one of the files you may change")
            continue
        content = current[block.path]
        if content is None:
            if block.search.strip():
                problems.append(
                    f"{label}: the file does not exist; use an empty SEARCH to create it"
                )
            else:
                current[block.path] = block.replace
            continue
        if not block.search.strip():
            problems.append(
                f"{label}: SEARCH is empty but the file exists; quote the lines to change"
            )
            continue
        starts = _line_starts(content, block.search)
        count = len(starts)
        if count == 1:
            at = starts[0]
            current[block.path] = content[:at] + block.replace + content[at + len(block.search) :]
            continue
        if count > 1:
            problems.append(f"{label}: SEARCH matches {count} places; include more context")
            continue
        replaced, matches = _tolerant(content, block.search, block.replace)
        if replaced is not None:
            current[block.path] = replaced
        elif matches > 1:
            problems.append(f"{label}: SEARCH matches {matches} places; include more context")
        else:
            first = block.search.strip().splitlines()[0]
            problems.append(
                f"{label}: SEARCH matches nothing, even ignoring whitespace "
                f"(it begins: {first[:80]!r}); copy the lines exactly from the file"
            )
    if problems:
        raise MalformedReply("; ".join(problems))
    changed = {path: text for path, text in current.items() if text != files.get(path)}
    changed = {path: text for path, text in changed.items() if text is not None}
    if not changed:
        raise MalformedReply("the blocks change nothing: every REPLACE equals its SEARCH")
    return changed
