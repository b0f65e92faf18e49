"""A normalized scenario (the model planning reads) and the checks every path shares:
short reprs for messages, JSON paths, the nesting and surrogate checks made before anything
walks a scenario."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from ecg_ray.errors import RenderError, invalid_scenario, scenario_number

# A cue ending at e is drawn up to e - END_EPSILON: frame times are never this close to a
# cue end without being meant to be past it.
END_EPSILON = 1e-6
MAX_CUES = 20_000
MAX_TEXT_CHARS = 2_000
# Real scenarios nest 8-11 JSON levels. Deeper input is refused before anything recurses over
# it (deepcopy, the node walk, the v1.3 migration, pickling through Ray), which a few hundred
# levels would turn into a RecursionError instead of an error naming the place.
MAX_DEPTH = 64

DEFAULT_TRACK_ID = "ecg-captions"
DEFAULT_FONT = "'Noto Sans CJK KR', 'Noto Sans KR', 'Noto Color Emoji', sans-serif"
# Bottom centre inside a 10% safe area; white bold text with a dark outline and shadow reads
# on bright and dark footage alike.
DEFAULT_STYLE: dict[str, Any] = {
    "fontFamily": DEFAULT_FONT,
    "fontWeight": 700,
    "fontSizeRel": 0.06,
    "color": "#ffffff",
    "stroke": {"widthRel": 0.0018, "color": "#000000"},
    "textShadow": "0 0 3px rgba(0,0,0,0.9), 0 2px 6px rgba(0,0,0,0.6)",
    "align": "center",
    "whiteSpace": "nowrap",
}
SAFE_BOTTOM = 0.90
LINE_HEIGHT_REL = 0.075
MAX_LINE_WIDTH_REL = 0.80
# Define keys given to image nodes whose src is a URL of their own (normalize makes them, assets fetches them).
SRC_ASSET_PREFIX = "ecg-src-"
# The caption page's made-up origin: the page is served from memory there (capture.browser) and a
# job's define assets are answered on it at content-addressed paths (scenario.assets).
PAGE_ORIGIN = "https://captions.ecg-ray.invalid"


class PageAsset(BaseModel):
    """One fetched define asset, served to the caption page from memory (assets.py)."""

    keys: list[str]          # the define keys that name it (one source may serve several)
    types: list[str]         # each key's type: "font" or "image"
    labels: list[str]        # each key as messages name it: define.KEY, or the image node's src it came from
    source: str              # where it came from (URL with credentials redacted, or path), for messages
    content_type: str
    body: bytes


class Scenario(BaseModel):
    """A normalized scenario plus what planning needs to know of it."""

    scenario: dict[str, Any]
    # (start, end) per cue in seconds, end already extended by plugin windows that outlast it
    cue_ranges: list[tuple[float, float]]
    warnings: list[str] = []
    # Define assets fetched for the job (assets.fetch_assets), by their path on the page's origin;
    # empty until the job runs (normalize never fetches).
    assets: dict[str, PageAsset] = {}

    def lower_half_only(self) -> bool:
        """True when every cue is placed, and every placement in it is in the frame's lower half
        (layout position y >= 0.5, define references followed). Where this holds, segment.py's
        overlay band (sized at a segment's first caption) rarely misses; a cue placed higher, or
        placed in a way this cannot read, turns the band off for the job rather than risk
        rendering segments twice."""
        sc = self.scenario
        for cue in sc.get("cues") or []:
            ys = list(_position_ys(sc, cue.get("root") if isinstance(cue, dict) else None))
            if not ys or any(y is None or y < 0.5 for y in ys):
                return False
        return True

    def active_start(self, t: float) -> float | None:
        """Earliest start of any cue whose range contains t (where a pre-roll must begin)."""
        starts = [s for s, e in self.cue_ranges if s <= t < e]
        return min(starts) if starts else None


_fail = invalid_scenario
_num = scenario_number


def load_scenario_text(text: str | bytes, source: str = "scenario") -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RenderError("invalid_scenario", f"{source} is not valid JSON: {exc}") from exc


def show(value: Any, limit: int = 60) -> str:
    """repr() of a value from the input, cut short: an error names what it got without echoing
    a megabyte string (or a huge object) back into the message, the API answer and the logs."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = r.maxlong = limit
    r.maxlevel, r.maxdict, r.maxlist = 2, 4, 4
    text = r.repr(value)
    return text if len(text) <= limit * 2 else text[:limit * 2] + "..."


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def path_join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _PLAIN_KEY.match(key) or len(key) > 60:
        # An empty, long or odd key is quoted (and cut): the path stays one unambiguous line.
        return f"{path}[{json.dumps(key[:60])}]"
    return f"{path}.{key}" if path else key


def tree_problem(data: Any, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(JSON path, problem) for the first place that nests deeper than ``max_depth`` or holds
    a string (or key) with an unpaired UTF-16 surrogate, else None. Iterative, so any depth
    is safe. A lone surrogate (JSON allows ``"\\ud800"``) is no Unicode text: it cannot be
    encoded to UTF-8 for the job's fingerprint, its SQLite row, logs or callbacks."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            bad = _surrogate(value)
            if bad is not None:
                return path or "scenario", f"contains an unpaired surrogate U+{ord(bad):04X} (not valid Unicode text)"
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > max_depth:
            return path or "scenario", f"nests deeper than {max_depth} levels"
        if isinstance(value, dict):
            for key, item in value.items():
                bad_key = _surrogate(key) if isinstance(key, str) else None
                if bad_key is not None:
                    return path or "scenario", f"has a key with an unpaired surrogate U+{ord(bad_key):04X}"
                stack.append((item, path_join(path, key), depth + 1))
        else:
            for i, item in enumerate(value):
                stack.append((item, path_join(path, i), depth + 1))
    return None


def _surrogate(text: str) -> str | None:
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return text[exc.start]


def resolve_define(sc: dict, value: Any) -> Any:
    """Follow a ``"define.a.b"`` reference into the scenario's define section (else as is)."""
    if isinstance(value, str) and value.startswith("define."):
        cur: Any = sc.get("define") or {}
        for part in value[len("define."):].split("."):
            if not isinstance(cur, dict) or part not in cur:
                return value
            cur = cur[part]
        return cur
    return value


def _position_ys(sc: dict, node: Any, depth: int = 0):
    """The y of every layout position in a node tree (None for one that cannot be read)."""
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return
    layout = resolve_define(sc, node.get("layout"))
    if isinstance(layout, dict) and "position" in layout:
        pos = resolve_define(sc, layout["position"])
        y = pos.get("y") if isinstance(pos, dict) else (pos[1] if isinstance(pos, list) and len(pos) == 2 else None)
        y = resolve_define(sc, y)
        yield float(y) if isinstance(y, (int, float)) and not isinstance(y, bool) else None
    for child in node.get("children") or []:
        yield from _position_ys(sc, child, depth + 1)
