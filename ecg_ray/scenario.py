"""Normalize what callers send into a MotionText v2.0 scenario the caption page can render.

Accepted: MotionText v2.0 as is, and the seed service's simple shape
``{"version": "1.3", "cues": [{"start": 0, "end": 5, "text": "Hello"}]}``.
Cue ends are made half-open: a cue [s, e) shows at s and not at e (MotionText 1.5.0 shows
both cues at a shared boundary).
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from pydantic import BaseModel

from .errors import RenderError, invalid_scenario, scenario_number
from .plugins import resolve_plugin_name

# A cue ending at e is drawn up to e - END_EPSILON: frame times are never this close to a
# cue end without being meant to be past it.
END_EPSILON = 1e-6
MAX_CUES = 20_000
MAX_TEXT_CHARS = 2_000

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


class Scenario(BaseModel):
    """A normalized scenario plus what planning needs to know of it."""

    scenario: dict[str, Any]
    # (start, end) per cue in seconds, end already extended by plugin windows that outlast it
    cue_ranges: list[tuple[float, float]]
    warnings: list[str] = []

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


def _is_simple(data: dict) -> bool:
    cues = data.get("cues")
    return (
        isinstance(cues, list)
        and "tracks" not in data
        and all(isinstance(c, dict) and "root" not in c for c in cues)
    )


def _text_units(ch: str) -> float:
    o = ord(ch)
    # East Asian wide characters are about one em wide; Latin letters about half.
    if 0x1100 <= o <= 0x11FF or 0x2E80 <= o <= 0xA4CF or 0xAC00 <= o <= 0xD7A3 or 0xF900 <= o <= 0xFAFF \
            or 0xFE30 <= o <= 0xFE4F or 0xFF00 <= o <= 0xFF60 or o >= 0x1F300:
        return 1.0
    return 0.58


def wrap_lines(text: str, max_units: float) -> list[str]:
    """Greedy line breaking on spaces (and between wide characters when a word is too long)."""
    lines: list[str] = []
    for para in text.replace("\r\n", "\n").split("\n"):
        words = para.split(" ")
        cur = ""
        for word in words:
            cand = word if not cur else cur + " " + word
            if sum(map(_text_units, cand)) <= max_units or not cur:
                cur = cand
            else:
                lines.append(cur)
                cur = word
            while sum(map(_text_units, cur)) > max_units and len(cur) > 1:
                # A single over-long word: cut it where it overflows.
                acc, cut = 0.0, 0
                for i, ch in enumerate(cur):
                    acc += _text_units(ch)
                    if acc > max_units:
                        cut = max(1, i)
                        break
                lines.append(cur[:cut])
                cur = cur[cut:]
        lines.append(cur)
    return [ln for ln in lines if ln.strip()] or [""]


def _simple_to_v2(data: dict, aspect: float) -> dict:
    cues_in = data["cues"]
    if len(cues_in) > MAX_CUES:
        raise _fail("cues", f"has {len(cues_in)} cues; at most {MAX_CUES} are allowed")
    max_units = MAX_LINE_WIDTH_REL * aspect / DEFAULT_STYLE["fontSizeRel"]
    cues = []
    for i, cue in enumerate(cues_in):
        p = f"cues[{i}]"
        if not isinstance(cue, dict):
            raise _fail(p, "must be an object")
        for key in ("start", "end", "text"):
            if key not in cue:
                raise _fail(p, f"missing field {key!r}")
        start, end = _num(cue["start"], p + ".start"), _num(cue["end"], p + ".end")
        if start < 0:
            raise _fail(p + ".start", "must not be negative")
        if end <= start:
            raise _fail(p, f"end ({end}) must be after start ({start})")
        text = cue["text"]
        if not isinstance(text, str):
            raise _fail(p + ".text", "must be a string")
        if len(text) > MAX_TEXT_CHARS:
            raise _fail(p + ".text", f"is {len(text)} characters; at most {MAX_TEXT_CHARS} are allowed")
        lines = wrap_lines(text, max_units)
        effect = cue.get("effect")
        chain = []
        if effect is not None:
            if not isinstance(effect, str):
                raise _fail(p + ".effect", "must be a plugin name")
            # An entrance over the first 30% of the cue (second bound counts from the end).
            chain = [{"name": effect, "timeOffset": ["0%", "-70%"]}]
        children = []
        n = len(lines)
        for j, line in enumerate(lines):
            node: dict[str, Any] = {
                "id": f"cue-{i}-line-{j}",
                "eType": "text",
                "text": line,
                "displayTime": [start, end],
                "layout": {
                    "position": {"x": 0.5, "y": SAFE_BOTTOM - (n - 1 - j) * LINE_HEIGHT_REL},
                    "anchor": "bc",
                },
            }
            if chain:
                node["pluginChain"] = copy.deepcopy(chain)
            children.append(node)
        cues.append(
            {
                "id": f"cue-{i}",
                "track": DEFAULT_TRACK_ID,
                "root": {"id": f"cue-{i}-group", "eType": "group", "children": children},
            }
        )
    return {
        "version": "2.0",
        "timebase": {"unit": "seconds"},
        "stage": {"baseAspect": "auto", "safeArea": {"top": 0.05, "bottom": 0.1, "left": 0.05, "right": 0.05}},
        "tracks": [
            {"id": DEFAULT_TRACK_ID, "type": "subtitle", "layer": 1, "defaultStyle": dict(DEFAULT_STYLE)}
        ],
        "cues": cues,
    }


def _resolve(sc: dict, value: Any) -> Any:
    """Follow a ``"define.a.b"`` reference into the scenario's define section (else as is)."""
    if isinstance(value, str) and value.startswith("define."):
        cur: Any = sc.get("define") or {}
        for part in value[len("define."):].split("."):
            if not isinstance(cur, dict) or part not in cur:
                return value
            cur = cur[part]
        return cur
    return value


def plugin_window(offset: Any, start: float, end: float) -> tuple[float, float]:
    """A plugin's active window, as MotionText 1.5.0 resolves ``timeOffset``: the first bound
    counts from the node's start and the second from its END, in seconds or in percent of
    the node's duration (so ``["0%", "-70%"]`` is the first 30%, ``["0%", "100%"]`` runs
    one whole duration past the end)."""
    dur = end - start

    def bound(v: Any, base: float) -> float:
        if isinstance(v, bool):
            return base
        if isinstance(v, (int, float)):
            return base + float(v) if math.isfinite(v) else base
        if isinstance(v, str):
            t = v.strip()
            try:
                return base + (float(t[:-1]) / 100.0 * dur if t.endswith("%") else float(t))
            except ValueError:
                return base
        return base

    if not (isinstance(offset, list) and len(offset) == 2):
        offset = ["0%", "100%"]
    return bound(offset[0], start), bound(offset[1], end)


def normalize(data: Any, aspect: float = 16 / 9) -> Scenario:
    """Validate and normalize. ``aspect`` is the output's width/height (for line breaking)."""
    if isinstance(data, (str, bytes)):
        data = load_scenario_text(data)
    if not isinstance(data, dict):
        raise RenderError("invalid_scenario", "scenario must be a JSON object")
    warnings: list[str] = []
    version = str(data.get("version", ""))
    if _is_simple(data):
        sc = _simple_to_v2(data, aspect)
    elif version == "2.0":
        sc = copy.deepcopy(data)
    elif version.startswith("1."):
        # MotionText v1.3 with tracks: rewritten to v2.0, then checked like any v2.0 input.
        from .migrate import migrate_v13

        sc, migration_warnings = migrate_v13(data)
        warnings.extend(migration_warnings)
    else:
        raise _fail("version", f"unsupported scenario version {data.get('version')!r} (expected '2.0')")

    for key in ("tracks", "cues"):
        if not isinstance(sc.get(key), list):
            raise _fail(key, "missing or not a list")
    if len(sc["cues"]) > MAX_CUES:
        raise _fail("cues", f"has {len(sc['cues'])} cues; at most {MAX_CUES} are allowed")
    sc.setdefault("timebase", {"unit": "seconds"})
    sc.setdefault("stage", {"baseAspect": "16:9"})
    track_ids = set()
    for i, tr in enumerate(sc["tracks"]):
        if not isinstance(tr, dict) or not isinstance(tr.get("id"), str):
            raise _fail(f"tracks[{i}]", "must be an object with a string id")
        track_ids.add(tr["id"])

    ranges: list[tuple[float, float]] = []
    for i, cue in enumerate(sc["cues"]):
        p = f"cues[{i}]"
        if not isinstance(cue, dict):
            raise _fail(p, "must be an object")
        if cue.get("track") not in track_ids:
            raise _fail(p + ".track", f"unknown track {cue.get('track')!r}")
        if "root" not in cue:
            raise _fail(p, "missing field 'root'")
        lo, hi = math.inf, -math.inf

        def visit(node: Any, npath: str, inherited: tuple[float, float] | None) -> None:
            nonlocal lo, hi
            if not isinstance(node, dict):
                raise _fail(npath, "must be an object")
            etype = node.get("eType")
            if etype not in ("group", "text", "image", "video"):
                raise _fail(npath + ".eType", f"unknown element type {etype!r}")
            if etype == "text":
                text = _resolve(sc, node.get("text"))
                if not isinstance(text, str):
                    raise _fail(npath + ".text", "must be a string")
                if len(text) > MAX_TEXT_CHARS:
                    raise _fail(npath + ".text", f"is {len(text)} characters; at most {MAX_TEXT_CHARS} are allowed")
            own = _resolve(sc, node.get("displayTime"))
            span = inherited
            if own is not None:
                if not (isinstance(own, list) and len(own) == 2):
                    raise _fail(npath + ".displayTime", "must be [start, end]")
                s, e = _num(own[0], npath + ".displayTime[0]"), _num(own[1], npath + ".displayTime[1]")
                if e < s:
                    raise _fail(npath + ".displayTime", f"end ({e}) is before start ({s})")
                if e > s:
                    node["displayTime"] = [s, e - END_EPSILON]
                span = (s, e)
            chain = _resolve(sc, node.get("pluginChain"))
            if span is not None:
                lo, hi = min(lo, span[0]), max(hi, span[1])
            for k, spec in enumerate(chain if isinstance(chain, list) else []):
                spec = _resolve(sc, spec)
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                    raise _fail(f"{npath}.pluginChain[{k}]", "must be an object with a plugin name")
                canonical = resolve_plugin_name(spec["name"])
                if canonical is None:
                    warnings.append(
                        f"{npath}.pluginChain[{k}]: plugin {spec['name']!r} is not installed; drawn without it"
                    )
                elif isinstance(node["pluginChain"], list) and isinstance(node["pluginChain"][k], dict):
                    node["pluginChain"][k]["name"] = canonical
                if span is not None:
                    wa, wb = plugin_window(_resolve(sc, spec.get("timeOffset")), span[0], span[1])
                    lo, hi = min(lo, wa), max(hi, wb)
            children = node.get("children")
            if children is not None:
                if not isinstance(children, list):
                    raise _fail(npath + ".children", "must be a list")
                for j, child in enumerate(children):
                    visit(child, f"{npath}.children[{j}]", span)

        cue_time = _resolve(sc, cue.get("displayTime"))
        inherited = None
        if isinstance(cue_time, list) and len(cue_time) == 2:
            inherited = (_num(cue_time[0], p + ".displayTime[0]"), _num(cue_time[1], p + ".displayTime[1]"))
        visit(cue["root"], p + ".root", inherited)
        if lo < math.inf:
            ranges.append((max(0.0, lo), hi))
        else:
            # No time we can read (a reference we cannot resolve): assume it may show anywhere,
            # so the browser is asked on every frame rather than the cue being skipped.
            ranges.append((0.0, math.inf))
    return Scenario(scenario=sc, cue_ranges=ranges, warnings=warnings)
