"""The canary weight edited in place: one token and, for an abort, the line's comment.

A weight step or an abort is reviewed as a one-line diff, so it is made as one:
the new number replaces the old one at the position the YAML parser reports,
and nothing else in the file is rewritten. Comments, blank lines, indentation,
flow mappings, a `---` marker and CRLF line endings stay exactly as they were,
which a round-trip dump cannot promise. The caller re-parses and re-validates
the result, so an edit this module gets wrong is refused, never written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml.comments import CommentedMap

WEIGHT = "weight"
# A plain scalar ends at whitespace, or at `,` `}` `]` inside a flow mapping.
_PLAIN_TOKEN = re.compile(r"[^\s,}\]#]+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class WeightLineError(Exception):
    """The weight is written in a form this module will not edit in place."""


@dataclass(frozen=True)
class WeightLine:
    """Where the weight's value sits: its line, the token's span, and the line's comment."""

    index: int
    start: int
    end: int
    comment_start: int | None
    lines: list[str]
    breaks: list[str]

    @property
    def comment(self) -> str | None:
        """The line's comment without `#` and surrounding blanks, or None."""
        if self.comment_start is None:
            return None
        return self.lines[self.index][self.comment_start + 1 :].strip()


def _split(text: str) -> tuple[list[str], list[str]]:
    """Lines without their breaks, and the breaks (the last one may be empty)."""
    lines, breaks, position = [], [], 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(text[position : match.start()])
        breaks.append(match.group())
        position = match.end()
    lines.append(text[position:])
    breaks.append("")
    return lines, breaks


def _comment_start(line: str, start: int) -> int | None:
    """Index of the `#` opening a comment at or after `start`, skipping quoted scalars."""
    quote: str | None = None
    index = start
    while index < len(line):
        char = line[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if quote is not None:
            if char == quote:
                if quote == "'" and line[index + 1 : index + 2] == "'":
                    index += 2
                    continue
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return index
        index += 1
    return None


def locate(text: str, canary: CommentedMap) -> WeightLine:
    """The weight of `canary` (a mapping parsed from `text`) in `text`."""
    if WEIGHT not in canary:
        raise WeightLineError("the canary has no weight key")
    line_no, column = canary.lc.value(WEIGHT)
    lines, breaks = _split(text)
    if line_no >= len(lines):
        raise WeightLineError(f"the parser placed the weight on line {line_no + 1}, past the end of the file")
    line = lines[line_no]
    match = _PLAIN_TOKEN.match(line, column)
    if match is None:
        raise WeightLineError(f"line {line_no + 1}: no plain number at column {column + 1}")
    return WeightLine(
        index=line_no,
        start=match.start(),
        end=match.end(),
        comment_start=_comment_start(line, match.end()),
        lines=lines,
        breaks=breaks,
    )


def replace(text: str, canary: CommentedMap, weight: int, comment: str | None = None) -> str:
    """`text` with the canary's weight set to `weight`; `comment`, if given, replaces
    the line's comment (or is added). Only that line changes."""
    where = locate(text, canary)
    line = where.lines[where.index]
    new = line[: where.start] + str(weight) + line[where.end :]
    if comment is not None:
        shift = len(str(weight)) - (where.end - where.start)
        if where.comment_start is not None:
            new = new[: where.comment_start + shift].rstrip(" \t")
        new = new.rstrip(" \t") + f"  # {comment}"
    lines = list(where.lines)
    lines[where.index] = new
    return "".join(line + brk for line, brk in zip(lines, where.breaks, strict=True))
