"""SCPI plumbing for the simulated instruments: header matching and binary blocks (no I/O).

Headers are matched node by node in short or long form, case-insensitively
(``:WAV:BYT`` = ``:WAVeform:BYTeorder``); a node written ``CHANnel#`` takes a numeric suffix
(``CHAN2``), passed to the handler. A query is a header ending in ``?``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[..., "str | bytes | None"]

_SUFFIX = re.compile(r"^([A-Za-z_*]+)(\d*)$")


def _short(node: str) -> str:
    """Short form of a mnemonic: its leading run of characters that are not lower case."""
    i = 0
    while i < len(node) and not node[i].islower():
        i += 1
    return node[:i]


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    numbered: bool

    def match(self, token: str) -> tuple[bool, int | None]:
        m = _SUFFIX.match(token)
        if not m:
            return False, None
        word, digits = m.group(1).upper(), m.group(2)
        if word not in (self.short.upper(), self.long.upper()):
            return False, None
        if self.numbered:
            return True, int(digits or 1)
        return (not digits), None


def definite_block(payload: bytes) -> bytes:
    """An IEEE 488.2 definite-length block: ``#<n><length><payload>``."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


class CommandSet:
    """Header -> handler table. ``add("WAVeform:SOURce", fn)`` registers the set form (``fn(args)``),
    ``add("WAVeform:SOURce?", fn)`` the query; numbered nodes pass their numbers first."""

    def __init__(self) -> None:
        self._table: list[tuple[tuple[_Node, ...], bool, Handler]] = []

    def add(self, pattern: str, handler: Handler) -> None:
        query = pattern.endswith("?")
        nodes = tuple(_Node(_short(p.rstrip("#")), p.rstrip("#"), p.endswith("#")) for p in pattern.rstrip("?").lstrip(":").split(":"))
        self._table.append((nodes, query, handler))

    def find(self, header: str) -> tuple[Handler, list[int], bool] | None:
        """The handler for ``header``, the node numbers it carries, and whether it is a query."""
        query = header.endswith("?")
        tokens = header.rstrip("?").lstrip(":").split(":")
        for nodes, q, handler in self._table:
            if q != query or len(nodes) != len(tokens):
                continue
            numbers = []
            for node, token in zip(nodes, tokens):
                ok, number = node.match(token)
                if not ok:
                    break
                if number is not None:
                    numbers.append(number)
            else:
                return handler, numbers, query
        return None


def run_line(commands: CommandSet, line: str, errors) -> tuple[list[bytes], bool]:
    """Execute one line of ``;``-separated commands: (the answers, whether a query had none).
    An unknown header or a bad parameter value is queued in ``errors`` (SCPI -113 / -224)."""
    answers: list[bytes] = []
    for part in line.split(";"):
        part = part.strip()
        if not part:
            continue
        header, _, args = part.partition(" ")
        found = commands.find(header)
        if found is None:
            errors.append(f'-113,"Undefined header; {header}"')
            continue
        handler, numbers, query = found
        try:
            result = handler(*numbers) if query else handler(*numbers, args.strip())
        except (ValueError, KeyError, IndexError) as exc:
            errors.append(f'-224,"Illegal parameter value; {header} {args.strip()}: {exc}"')
            continue
        if result is None:
            if query:
                return answers, True
            continue
        answers.append(result if isinstance(result, bytes) else str(result).encode())
    return answers, False
