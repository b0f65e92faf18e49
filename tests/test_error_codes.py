"""Every error code the package raises or answers is a documented one (errors.ERROR_CODES, the
README's "Error codes"): RenderError maps an unknown code to internal_error at run time, so a
typo would otherwise only show as a vague failure in production."""

from __future__ import annotations

import ast
from pathlib import Path

from ecg_ray.errors import ERROR_CODES, RenderError

PKG = Path(__file__).resolve().parents[1] / "ecg_ray"


def _codes_used() -> list[tuple[str, int, str]]:
    """(file, line, code) of each literal code given to RenderError(...), JobError(code=...),
    FFmpeg's failure helpers and the API's error answers."""
    found = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            args = []
            if name in ("RenderError", "JobError"):
                args = node.args[:1] + [k.value for k in node.keywords if k.arg == "code"]
            elif name == "_error":  # api._error(status, error_code, message)
                args = node.args[1:2]
            for a in args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str):
                    found.append((str(path.relative_to(PKG)), node.lineno, a.value))
    return found


def test_every_code_the_package_uses_is_documented():
    used = _codes_used()
    assert len(used) > 100, "the scan found too few error sites: has the code moved?"
    unknown = [u for u in used if u[2] not in ERROR_CODES]
    assert unknown == [], unknown


def test_readme_lists_every_code():
    readme = (PKG.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    assert [c for c in ERROR_CODES if f"`{c}`" not in section] == []


def test_an_unknown_code_is_internal_error_not_a_new_code():
    assert RenderError("no_such_code", "x").code == "internal_error"
