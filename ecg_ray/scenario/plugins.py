"""The MotionText plugins this project ships: manifests (data) and their JS modules."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

_HERE = Path(__file__).parent
MANIFEST_DIR = _HERE / "plugins_manifests"
JS_DIR = _HERE.parent / "capture" / "web" / "plugins"  # the plugins run in the caption page

# Older names used by existing scenarios, mapped to the plugin that draws them.
ALIASES: dict[str, str] = {
    "fadeIn": "fadein",
    "pop": "scalepop",
}


class PluginInfo(BaseModel):
    name: str
    version: str
    type: str
    targets: list[str]
    aliases: list[str] = []
    params: dict[str, object] = {}


@lru_cache(maxsize=1)
def installed_plugins() -> dict[str, PluginInfo]:
    """Plugins with both a manifest and a JS module, keyed by manifest name."""
    out: dict[str, PluginInfo] = {}
    for path in sorted(MANIFEST_DIR.glob("*.json")):
        man = json.loads(path.read_text(encoding="utf-8"))
        if not (JS_DIR / f"{man['name']}.js").is_file():
            continue
        out[man["name"]] = PluginInfo(
            name=man["name"],
            version=man["version"],
            type=man.get("type", "dom"),
            targets=man.get("targets", []),
            aliases=sorted(a for a, target in ALIASES.items() if target == man["name"]),
            params={k: v.get("default") for k, v in (man.get("schema") or {}).items()},
        )
    return out


def resolve_plugin_name(name: str) -> str | None:
    """Canonical plugin name for a scenario's plugin reference (``name`` or ``name@ver``)."""
    base = name.split("@", 1)[0]
    plugins = installed_plugins()
    if base in plugins:
        return base
    target = ALIASES.get(base)
    return target if target in plugins else None


def plugin_index_js() -> str:
    """The page's /plugins/index.js: imports every module and pairs it with its manifest."""
    lines = []
    entries = []
    for i, info in enumerate(installed_plugins().values()):
        man = json.loads((MANIFEST_DIR / f"{info.name}@{info.version}.json").read_text(encoding="utf-8"))
        for field in man.get("schema") or {}:
            man["schema"][field].pop("i18n", None)
        lines.append(f'import m{i} from "/plugins/{info.name}.js";')
        entries.append(
            f"  {{ manifest: {json.dumps(man, ensure_ascii=True)}, module: m{i}, aliases: {json.dumps(info.aliases)} }}"
        )
    return "\n".join(lines) + "\nexport const PLUGINS = [\n" + ",\n".join(entries) + "\n];\n"
