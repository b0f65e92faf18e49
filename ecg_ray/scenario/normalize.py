"""Normalize what callers send into a MotionText v2.0 scenario the caption page can render.

Accepted: MotionText v2.0 as is, and the seed service's simple shape
``{"version": "1.3", "cues": [{"start": 0, "end": 5, "text": "Hello"}]}``.
Cue ends are made half-open: a cue [s, e) shows at s and not at e (MotionText 1.5.0 shows
both cues at a shared boundary).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from typing import Any, Iterator

from ecg_ray.errors import RenderError, invalid_scenario, scenario_number
from ecg_ray.scenario.assets import check_define_assets
from ecg_ray.scenario.layout import caption_layout, caption_style, fit_lines
from ecg_ray.scenario.migrate_v13 import V13NodeRepair, is_v13_node, migrate_v13_traced, v13_node_paths
from ecg_ray.scenario.model import (
    DEFAULT_TRACK_ID,
    END_EPSILON,
    MAX_CUES,
    MAX_TEXT_CHARS,
    SRC_ASSET_PREFIX,
    Scenario,
    load_scenario_text,
    path_join,
    resolve_define,
    show,
    tree_problem,
)
from ecg_ray.scenario.plugins import installed_plugins, resolve_plugin_name

_fail = invalid_scenario
_num = scenario_number


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


def _fold(s: str, start: float, limit: float) -> tuple[float, bool]:
    """``start`` plus the units of ``s``, added left to right (so the float result is the one
    ``sum(map(_text_units, prefix + s))`` gives when ``start`` is the prefix's sum), stopping as
    soon as it is over ``limit``: (sum so far, over)."""
    acc = start
    for ch in s:
        acc += _text_units(ch)
        if acc > limit:
            return acc, True
    return acc, False


def wrap_lines(text: str, max_units: float) -> list[str]:
    """Greedy line breaking on spaces (and between wide characters when a word is too long).

    Linear in the text: every sum continues from the line's running total or stops at the
    limit. (Summing the whole remaining word again at every cut took 45 s of CPU for a
    scenario of 2,000 cues of 2,000 Korean characters without spaces, well inside the
    request size limit; the breaks themselves are unchanged.)"""
    lines: list[str] = []
    for para in text.replace("\r\n", "\n").split("\n"):
        cur, cur_units = "", 0.0
        for word in para.split(" "):
            if cur:
                units, over = _fold(" " + word, cur_units, max_units)
                if not over:
                    cur, cur_units = cur + " " + word, units
                    continue
                lines.append(cur)
            cur = word
            units, over = _fold(cur, 0.0, max_units)
            while over and len(cur) > 1:
                # A single over-long word: cut it where it overflows.
                acc, cut = 0.0, 0
                for i, ch in enumerate(cur):
                    acc += _text_units(ch)
                    if acc > max_units:
                        cut = max(1, i)
                        break
                lines.append(cur[:cut])
                cur = cur[cut:]
                units, over = _fold(cur, 0.0, max_units)
            cur_units = units
        lines.append(cur)
    return [ln for ln in lines if ln.strip()] or [""]


def _literal(text: str) -> str:
    """Caption text of the simple shape is text, but the page resolves every string that starts
    with "define." as a reference (and fails on an unknown one): a WORD JOINER (U+2060,
    invisible, no width) in front keeps such a line literal."""
    return "\u2060" + text if text.startswith("define.") else text


def _simple_to_v2(data: dict, aspect: float) -> dict:
    cues_in = data["cues"]
    if len(cues_in) > MAX_CUES:
        raise _fail("cues", f"has {len(cues_in)} cues; at most {MAX_CUES} are allowed")
    layout = caption_layout(aspect)
    style = caption_style(layout)
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
        lines, scale = fit_lines(text, layout, wrap_lines)
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
                "text": _literal(line),
                "displayTime": [start, end],
                "layout": {
                    "position": {"x": 0.5, "y": layout.bottom - (n - 1 - j) * layout.line_pitch(scale)},
                    "anchor": "bc",
                },
            }
            if scale != 1.0:
                node["style"] = caption_style(layout, scale, only_size=True)
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
            {"id": DEFAULT_TRACK_ID, "type": "subtitle", "layer": 1, "defaultStyle": style}
        ],
        "cues": cues,
    }


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
    if isinstance(data.get("cues"), list) and len(data["cues"]) > MAX_CUES:
        # Before walking, copying or migrating them: 100,000 cues took a second to deepcopy
        # only to be refused.
        raise _fail("cues", f"has {len(data['cues'])} cues; at most {MAX_CUES} are allowed")
    problem = tree_problem(data)
    if problem is not None:
        raise _fail(*problem)
    warnings: list[str] = []
    chain_paths: dict[int, list[str]] = {}  # migrated v1.3 only: where each pluginChain entry came from
    version = str(data.get("version", ""))
    if _is_simple(data):
        sc = _simple_to_v2(data, aspect)
    elif version == "2.0":
        sc = copy.deepcopy(data)
        # str(2.0) == "2.0" let a number through, which the page refuses ("Only v2.0
        # scenarios are supported, got version "2"") only once the job runs.
        sc["version"] = "2.0"
    elif version.startswith("1."):
        # MotionText v1.3 with tracks: rewritten to v2.0, then checked like any v2.0 input.

        sc, migration_warnings, chain_paths = migrate_v13_traced(data)
        warnings.extend(migration_warnings)
    else:
        raise _fail("version", f"unsupported scenario version {show(data.get('version'))} (expected '2.0')")

    for key in ("tracks", "cues"):
        if not isinstance(sc.get(key), list):
            raise _fail(key, "missing or not a list")
    if len(sc["cues"]) > MAX_CUES:
        raise _fail("cues", f"has {len(sc['cues'])} cues; at most {MAX_CUES} are allowed")
    sc.setdefault("timebase", {"unit": "seconds"})
    sc.setdefault("stage", {"baseAspect": "16:9"})
    track_ids = set()
    subtitle_tracks = set()
    for i, tr in enumerate(sc["tracks"]):
        if not isinstance(tr, dict) or not isinstance(tr.get("id"), str):
            raise _fail(f"tracks[{i}]", "must be an object with a string id")
        track_ids.add(tr["id"])
        if tr.get("type") == "subtitle":
            subtitle_tracks.add(tr["id"])
    # v1.3-shaped nodes in a v2.0 scenario (a half-converted export): converted with the
    # migrator's node conversion, each one named in a warning (created on the first one met).

    repair: Any = None
    repaired: list[str] = []
    src_keys = itertools.count()  # the next ecg-src-N to try: one pass over N for all image nodes

    ranges: list[tuple[float, float]] = []
    for i, cue in enumerate(sc["cues"]):
        p = f"cues[{i}]"
        if not isinstance(cue, dict):
            raise _fail(p, "must be an object")
        # (a list or object as track is no id: `in` on the id set would raise TypeError)
        if not isinstance(cue.get("track"), str) or cue["track"] not in track_ids:
            raise _fail(p + ".track", f"unknown track {show(cue.get('track'))}")
        if "root" not in cue:
            raise _fail(p, "missing field 'root'")
        lo, hi = math.inf, -math.inf
        hint = resolve_define(sc, cue.get("domLifetime"))
        hint = (float(hint[0]), float(hint[1])) if isinstance(hint, list) and len(hint) == 2 \
            and all(_finite(v) for v in hint) and hint[0] <= hint[1] else None

        def visit(node: Any, npath: str, inherited: tuple[float, float] | None) -> Any:
            nonlocal lo, hi, repair
            if not isinstance(node, dict):
                raise _fail(npath, "must be an object")
            if is_v13_node(node):
                if repair is None:
                    repair = V13NodeRepair(sc)
                repaired.extend(v13_node_paths(node, npath))
                node = repair.node(node, npath, inherited, hint, cue["track"] in subtitle_tracks)
                chain_paths.update(repair.chain_paths)
            etype = node.get("eType")
            if etype not in ("group", "text", "image", "video"):
                raise _fail(npath + ".eType", f"unknown element type {show(etype)}")
            if etype == "image":
                _image_src(sc, node, npath, src_keys)
            if etype == "text":
                text = resolve_define(sc, node.get("text"))
                if not isinstance(text, str):
                    raise _fail(npath + ".text", "must be a string")
                if len(text) > MAX_TEXT_CHARS:
                    raise _fail(npath + ".text", f"is {len(text)} characters; at most {MAX_TEXT_CHARS} are allowed")
            own = resolve_define(sc, node.get("displayTime"))
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
            chain = resolve_define(sc, node.get("pluginChain"))
            if span is not None:
                lo, hi = min(lo, span[0]), max(hi, span[1])
            traced = chain_paths.get(id(node), [])
            for k, spec in enumerate(chain if isinstance(chain, list) else []):
                # The input's place: a migrated v1.3 `plugin` shifted the chain by one.
                cpath = traced[k] if k < len(traced) else f"{npath}.pluginChain[{k}]"
                spec = resolve_define(sc, spec)
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                    raise _fail(cpath, "must be an object with a plugin name")
                canonical = resolve_plugin_name(spec["name"])
                if canonical is None:
                    # Refused, not drawn without it: a caption that silently lacks its effect is
                    # worse than a clear error the platform can act on (`ecg-render plugins`).
                    raise _fail(f"{cpath}.name",
                                f"plugin {show(spec['name'])} is not installed (see `ecg-render plugins`)")
                asked = spec["name"].split("@", 1)[1] if "@" in spec["name"] else ""
                have = installed_plugins()[canonical].version
                if asked and asked != have:
                    # Drawn, but perhaps not as the version asked for would draw it: said.
                    warnings.append(f"{cpath}.name: {show(spec['name'])} asks for version {asked}; "
                                    f"drawn with the installed {canonical} {have}")
                if isinstance(node["pluginChain"], list) and isinstance(node["pluginChain"][k], dict):
                    node["pluginChain"][k]["name"] = canonical
                if span is not None:
                    wa, wb = plugin_window(resolve_define(sc, spec.get("timeOffset")), span[0], span[1])
                    lo, hi = min(lo, wa), max(hi, wb)
            children = node.get("children")
            if children is not None:
                if not isinstance(children, list):
                    raise _fail(npath + ".children", "must be a list")
                for j, child in enumerate(children):
                    children[j] = visit(child, f"{npath}.children[{j}]", span)
            return node

        cue_time = resolve_define(sc, cue.get("displayTime"))
        inherited = None
        if isinstance(cue_time, list) and len(cue_time) == 2:
            inherited = (_num(cue_time[0], p + ".displayTime[0]"), _num(cue_time[1], p + ".displayTime[1]"))
        cue["root"] = visit(cue["root"], p + ".root", inherited)
        if lo < math.inf:
            ranges.append((max(0.0, lo), hi))
        else:
            # No time we can read (a reference we cannot resolve): assume it may show anywhere,
            # so the browser is asked on every frame rather than the cue being skipped.
            ranges.append((0.0, math.inf))
    if repaired:
        warnings.extend(_repair_warnings(repaired))
        warnings.extend(repair.warnings())
    # What the page itself refuses (after its own define resolution), refused here with a path:
    # a 422 when the job is submitted instead of a job that fails with scenario_error.
    _check_like_page(sc)

    check_define_assets(sc)  # the shape of define fonts and images only: they are fetched when the job runs
    return Scenario(scenario=sc, cue_ranges=ranges, warnings=warnings)


MAX_REPAIR_WARNINGS = 20  # repaired nodes named one by one; the rest counted in one line


def _repair_warnings(paths: list[str]) -> list[str]:
    what = ("a MotionText v1.3 node (type/e_type/content instead of eType/text) in a v2.0 scenario, "
            "which motiontext-renderer 1.5.0 would not draw: converted as v1.3 (migrate.py), "
            "with anything under it, and drawn")
    out = [f"{p}: {what}" for p in paths[:MAX_REPAIR_WARNINGS]]
    if len(paths) > MAX_REPAIR_WARNINGS:
        rest = paths[MAX_REPAIR_WARNINGS:]
        out.append(f"{rest[0]}: and {len(rest) - 1} more v1.3 nodes after it converted the same way" if len(rest) > 1
                   else f"{rest[0]}: {what}")
    return out


# Define keys made for image nodes whose src is a URL or path of their own (_image_src).


def _image_src(sc: dict, node: dict, path: str, src_keys: Iterator[int]) -> None:
    """Point an image node's ``src`` at a define image asset's URL.

    ``"src": "define.KEY"`` naming a define image asset means that image. 1.5.0 resolves the
    reference to the whole entry ``{"type": "image", "url": ...}`` and sets the <img>'s src to
    "[object Object]", so nothing is drawn: point the node at the entry's URL instead.

    A src that is a URL or path of its own (directly or through a define string) becomes a
    define image asset: the page reaches no network and no disk, so it would draw nothing. As
    an asset it is fetched once for the job under the same rules as the define section's (URL
    policy, size and pixel limits, raster formats only), and messages name ``path``.src."""
    src = node.get("src")
    define = sc.get("define")
    if isinstance(src, str) and src.startswith("define."):
        key, *rest = src[len("define."):].split(".")
        entry = define.get(key) if isinstance(define, dict) else None
        if isinstance(entry, dict) and entry.get("type") == "image" and isinstance(entry.get("url"), str):
            if not rest:
                node["src"] = src + ".url"
            if not rest or rest == ["url"]:  # that entry's URL (a scenario normalized before, too)
                return
    url = resolve_define(sc, src)
    if not isinstance(url, str) or not url.strip() or url.startswith("define."):
        return  # nothing to fetch: no src, or a reference the page itself refuses
    if define is not None and not isinstance(define, dict):
        return  # a define section the page refuses (_check_like_page says so)
    # Its shape is checked with the define section's (check_define_assets, naming path.src).
    if define is None:
        define = sc["define"] = {}
    key = next(f"{SRC_ASSET_PREFIX}{i}" for i in src_keys if f"{SRC_ASSET_PREFIX}{i}" not in define)
    define[key] = {"type": "image", "url": url, "ecgFrom": path + ".src"}
    node["src"] = f"define.{key}.url"


def _claim_id(ids: set, value: Any, path: str, what: str) -> None:
    """A cue's or node's id: a non-empty string, unique across cues and nodes (as the page wants)."""
    if not isinstance(value, str) or not value:
        raise _fail(path, f"every {what} needs a non-empty string id")
    if value in ids:
        raise _fail(path, f"duplicate id {show(value)} (ids are unique across cues and nodes)")
    ids.add(value)


# -- the caption page's own checks (motiontext-renderer 1.5.0 parseScenario) --------------------

_PAGE_ASPECTS = ("16:9", "9:16", "auto")
_OFFSET_TEXT = re.compile(r"^\s*-?\d+(?:\.\d+)?%?\s*$")
_DEFINE_HOPS = 8           # references to references, deeper than any real scenario
_DEFINE_STEPS = 200_000    # values visited while resolving: diamond-shaped defines expand exponentially


class _DefineResolver:
    """motiontext-renderer's DefineResolver in Python: every string anywhere in the scenario
    that starts with "define." is replaced by the define entry it names (resolved in turn), and
    the same references are refused (an unknown key, a missing property, a cycle)."""

    def __init__(self, sc: dict) -> None:
        self.defines: dict[str, Any] = sc["define"] if isinstance(sc.get("define"), dict) else {}
        self.chain: list[str] = []
        self.steps = 0

    def value(self, v: Any, path: str) -> Any:
        if self.chain:  # only what references expand to counts (the scenario itself is bounded)
            self.steps += 1
        if self.steps > _DEFINE_STEPS:
            raise _fail(path, "define references expand to too much (a reference used in many places "
                              "that itself references others)")
        if isinstance(v, str):
            return self.ref(v, path) if v.startswith("define.") else v
        if isinstance(v, list):
            return [self.value(item, f"{path}[{i}]") for i, item in enumerate(v)]
        if isinstance(v, dict):
            return {k: self.value(item, path_join(path, k)) for k, item in v.items()}
        return v

    def ref(self, ref: str, path: str) -> Any:
        parts = ref[len("define."):].split(".")
        if not parts[0]:
            raise _fail(path, f"invalid define reference {show(ref)}")
        if parts[0] not in self.defines:
            raise _fail(path, f"{show(ref)}: there is no define entry {show(parts[0])}")
        if ref in self.chain:
            raise _fail(path, f"circular define reference {show(ref)}")
        if len(self.chain) >= _DEFINE_HOPS:
            raise _fail(path, f"define references nest deeper than {_DEFINE_HOPS}")
        self.chain.append(ref)
        try:
            cur = self.value(self.defines[parts[0]], f"define.{parts[0]}")
        finally:
            self.chain.pop()
        for part in parts[1:]:
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            elif isinstance(cur, list) and part.isdigit() and str(int(part)) == part and int(part) < len(cur):
                cur = cur[int(part)]
            elif isinstance(cur, list) and part == "length":
                cur = len(cur)
            else:
                raise _fail(path, f"{show(ref)}: {show(part)} is not found in the define entry")
        return cur


def _js_truthy(v: Any) -> bool:
    if v is None or v is False or v == "":
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return not (v == 0 or math.isnan(v))
    return True


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _time_range(v: Any, path: str) -> None:
    if not (isinstance(v, list) and len(v) == 2):
        raise _fail(path, "must be [start, end]")
    if not (_finite(v[0]) and _finite(v[1])):
        raise _fail(path, "must be two finite numbers")
    if v[0] > v[1]:
        raise _fail(path, f"start ({v[0]}) is after end ({v[1]})")


def _check_like_page(sc: dict) -> None:
    """Refuse what the page's parseScenario refuses (validateScenario after define resolution),
    with the same rules, so that normalize() accepting a scenario means the page loads it."""
    doc = sc
    if '"define.' in json.dumps(sc, ensure_ascii=False):  # (C speed) only then is there anything to resolve
        try:
            doc = _DefineResolver(sc).value(sc, "")
        except RecursionError:
            raise _fail("define", "define references nest too deep") from None
    tb = doc.get("timebase")
    if not isinstance(tb, dict):
        raise _fail("timebase", "must be an object such as {\"unit\": \"seconds\"}")
    if tb.get("unit") != "seconds":
        raise _fail("timebase.unit", f"must be \"seconds\", got {show(tb.get('unit'))}")
    if "fps" in tb:
        fps = tb["fps"]
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            raise _fail("timebase.fps", "must be a positive number")
    stage = doc.get("stage")
    if not isinstance(stage, dict):
        raise _fail("stage", f"must be an object such as {{\"baseAspect\": \"16:9\"}}, got {show(stage)}")
    if stage.get("baseAspect") not in _PAGE_ASPECTS:
        raise _fail("stage.baseAspect", f"must be one of {', '.join(_PAGE_ASPECTS)}, got {show(stage.get('baseAspect'))}")
    tracks, cues = doc.get("tracks"), doc.get("cues")
    if not isinstance(tracks, list) or not isinstance(cues, list):
        raise _fail("tracks" if not isinstance(tracks, list) else "cues", "must be a list")
    seen_tracks: set[Any] = set()
    for i, tr in enumerate(tracks):
        tid = tr.get("id") if isinstance(tr, dict) else None
        if not isinstance(tid, str):
            raise _fail(f"tracks[{i}].id", "must be a string")
        if tid in seen_tracks:
            raise _fail(f"tracks[{i}].id", f"duplicate track id {show(tid)}")
        seen_tracks.add(tid)
    ids: set[str] = set()

    def node_rules(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            raise _fail(path, "must be an object")
        if _js_truthy(node.get("displayTime")):
            _time_range(node["displayTime"], path + ".displayTime")
        chain = node.get("pluginChain")
        if isinstance(chain, list):
            for k, spec in enumerate(chain):
                if spec is None:
                    raise _fail(f"{path}.pluginChain[{k}]", "must be an object with a plugin name")
                off = spec.get("time_offset") if isinstance(spec, dict) else None
                if _js_truthy(off):
                    if not (isinstance(off, list) and len(off) == 2):
                        raise _fail(f"{path}.pluginChain[{k}].time_offset", "must be [start, end]")
                    for j, bound in enumerate(off):
                        if not (_finite(bound) or (isinstance(bound, str) and _OFFSET_TEXT.match(bound))):
                            raise _fail(f"{path}.pluginChain[{k}].time_offset[{j}]",
                                        "must be a number (seconds) or a percentage such as '50%'")
        _claim_id(ids, node.get("id"), path + ".id", "node")
        if node.get("eType") == "group" and _js_truthy(node.get("children")):
            for j, child in enumerate(node["children"] if isinstance(node["children"], list) else []):
                node_rules(child, f"{path}.children[{j}]")

    for i, cue in enumerate(cues):
        p = f"cues[{i}]"
        if not isinstance(cue, dict):
            raise _fail(p, "must be an object")
        if _js_truthy(cue.get("domLifetime")):
            _time_range(cue["domLifetime"], p + ".domLifetime")
        _claim_id(ids, cue.get("id"), p + ".id", "cue")
        if not isinstance(cue.get("track"), str) or cue["track"] not in seen_tracks:
            raise _fail(p + ".track", f"unknown track {show(cue.get('track'))}")
        node_rules(cue.get("root"), p + ".root")
