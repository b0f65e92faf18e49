"""Write docker/constraints.txt: the closure of pyproject.toml's runtime dependencies (extras
followed), pinned to the versions installed in this venv (the one the test suite passed with).

    .venv/bin/python scripts/image_constraints.py
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docker" / "constraints.txt"
HEADER = """\
# Runtime dependencies of the image, pinned to the versions the test suite passed with: the closure of
# pyproject.toml's [project] dependencies (ray[serve] included) in the tested venv. Regenerate with
# scripts/image_constraints.py after pyproject.toml changes; the Dockerfile installs these first (a
# cached layer), then the package with them as constraints.
"""


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(deps: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [Requirement(d) for d in deps]
    while stack:
        req = stack.pop()
        key = (canon(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            sys.exit(f"{req.name} is not installed in this venv: run scripts/setup.sh first")
        pins[key[0]] = dist.version
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker and not any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                continue
            stack.append(sub)
    return pins


def main() -> int:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = closure(deps)
    OUT.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    print(f"{OUT.relative_to(ROOT)}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
