"""Small file chores shared by the stages."""

from __future__ import annotations

import os


def discard(path: str) -> None:
    """Remove ``path`` if it is there; a cleanup never hides the error it follows."""
    try:
        os.remove(path)
    except OSError:
        pass
