"""The README's command blocks as a test runs them: split into commands, each with what its
comments promise, and run one after another in one bash (variables carry over, as they do
for a reader pasting them into a terminal).

What a comment promises: after a command, its own ``# …`` and the comment lines that follow
it. Every quoted text in them must appear in the command's output: ``"key": value`` pairs
as pairs (JSON spacing aside), other texts as they are; ``…`` inside quotes stands for any
text. A comment without quotes is prose and promises nothing checkable.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
QUOTED = r'"(?:[^"\\]|\\.)*"'
SCALAR = rf"(?:{QUOTED}|-?\d+(?:\.\d+)?|true|false|null)"
PAIR = re.compile(rf"({QUOTED})\s*:\s*({SCALAR})")
STRING = re.compile(QUOTED)
UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


@dataclass
class Command:
    """One command of a block, where it starts in the README, and what its comments promise."""

    text: str
    line: int
    promises: list[str] = field(default_factory=list)

    @property
    def changes_something(self) -> bool:
        """A POST or a body: not repeated while waiting for its promise to come true."""
        return bool(re.search(r"-X POST|\s-d\s|--data", self.text)) and "bridge " not in self.text

    def unmet(self, output: str) -> list[str]:
        """The promises the output does not keep."""
        flat = normalise(output)
        return [p for p in self.promises if not re.search(pattern(p), flat)]


@dataclass
class Block:
    """A fenced ``sh`` block: its first line in the README and its commands."""

    line: int
    commands: list[Command]


def normalise(text: str) -> str:
    """JSON spacing and ``\\uXXXX`` escapes aside, so the README's pretty promises match
    compact answers."""
    text = UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = re.sub(r'"\s*:\s*', '":', text)
    return re.sub(r",\s+", ",", text)


def pattern(promise: str) -> str:
    """A promise as a regular expression: ``…`` is any text (on one line)."""
    return ".*?".join(re.escape(part) for part in normalise(promise).split("…"))


def promises_of(comment: str) -> list[str]:
    """The checkable texts of a comment: pairs, then the other quoted texts."""
    found: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in PAIR.finditer(comment):
        found.append(f"{match.group(1)}: {match.group(2)}")
        spans.append(match.span())
    for match in STRING.finditer(comment):
        if any(start <= match.start() < end for start, end in spans):
            continue
        text = match.group(0)[1:-1]
        if text.strip("… "):
            found.append(text)
    return found


def is_complete(script: str) -> bool:
    """Whether bash reads ``script`` as whole commands (no open quote or continuation)."""
    if script.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    return checked.returncode == 0


def split_comment(line: str) -> tuple[str, str]:
    """``cmd  # comment`` → (cmd, comment), the ``#`` outside quotes and after a space."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :]
    return line, ""


def parse_block(lines: list[str], first: int) -> Block:
    """The commands of one block; ``first`` is the README line of its first line."""
    commands: list[Command] = []
    pending: list[str] = []
    start = first
    for offset, raw in enumerate(lines):
        code, comment = split_comment(raw) if not pending else (raw, "")
        if not pending and not code.strip():
            if comment and commands:
                commands[-1].promises += promises_of(comment)
            continue
        if not pending:
            start = first + offset
        pending.append(code)
        script = "\n".join(pending)
        if is_complete(script):
            last_code, last_comment = split_comment(pending[-1])
            if len(pending) > 1 and last_comment:
                pending[-1] = last_code
                comment = last_comment
            commands.append(Command("\n".join(pending), start, promises_of(comment)))
            pending = []
    assert not pending, f"README line {start}: a command never ends"
    return Block(first, commands)


def sh_blocks(readme: Path) -> list[Block]:
    """Every fenced ``sh`` block of the README, in order."""
    blocks: list[Block] = []
    open_block: tuple[str, int, list[str]] | None = None  # (language, first line, lines)
    for number, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if open_block is None:
            if fence:
                open_block = (fence.group(1), number + 1, [])
            continue
        if line.strip() == "```":
            language, first, lines = open_block
            if language == "sh":
                blocks.append(parse_block(lines, first))
            open_block = None
            continue
        open_block[2].append(line)
    return blocks
