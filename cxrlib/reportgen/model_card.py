"""The model card (``README.md``) of a model folder, with the sha256 of every other file.

Written last into the folder by the tiny model's pre-training; :func:`verify_model_folder`
reads the digests back, so a shipped checkpoint that was altered (or half copied) is caught
before it is used.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

CARD_FILE = "README.md"
_ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<size>\d+) \| (?P<sha256>[0-9a-f]{64}) \|$")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digests(folder: str | os.PathLike[str]) -> dict[str, tuple[int, str]]:
    """``relative path -> (bytes, sha256)`` of every file in ``folder`` except the card."""
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): (path.stat().st_size, sha256_file(path))
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() != CARD_FILE
    }


def files_table(digests: dict[str, tuple[int, str]]) -> str:
    """The card's markdown table of files, sizes and digests (what :func:`card_digests` reads)."""
    lines = ["| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| `{name}` | {size} | {sha} |" for name, (size, sha) in digests.items()]
    return "\n".join(lines)


def card_digests(card: str) -> dict[str, tuple[int, str]]:
    """The files table of a card's text."""
    out = {}
    for line in card.splitlines():
        match = _ROW.match(line.strip())
        if match:
            out[match["name"]] = (int(match["size"]), match["sha256"])
    return out


def verify_model_folder(folder: str | os.PathLike[str]) -> list[str]:
    """Problems of ``folder`` against its card's digests (empty: every file as recorded)."""
    root = Path(folder)
    card = root / CARD_FILE
    if not card.is_file():
        return [f"{card} is missing"]
    recorded = card_digests(card.read_text(encoding="utf-8"))
    if not recorded:
        return [f"{card} lists no file digests"]
    found = folder_digests(root)
    problems = [f"{name}: missing" for name in recorded if name not in found]
    problems += [f"{name}: not in the model card" for name in found if name not in recorded]
    problems += [
        f"{name}: sha256 {found[name][1][:12]}... differs from the card's {sha[:12]}..."
        for name, (_, sha) in recorded.items()
        if name in found and found[name][1] != sha
    ]
    return problems
