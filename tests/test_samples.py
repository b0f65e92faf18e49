"""The MotionText sample scenarios (tests/samples, vendored): v1.3 -> v2.0 migration against
the v2.0 versions of the same samples, and every sample through normalize() and the real
caption page.

The v2.0 samples are not all faithful renderings of their v1.3 twins: several carry a
converter's bugs (percent windows, unread array positions), one is half converted, and
cwi_demo_full is a different export of the same transcript. Where a sample differs from our
migration on something that is drawn, the difference is listed in KNOWN_SAMPLE_DIFFS with
the reason; any other difference fails, and so does a listed one that no longer occurs.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from ecg_ray.errors import RenderError
from ecg_ray.scenario.migrate_v13 import migrate_v13
from ecg_ray.scenario.normalize import normalize, plugin_window
from ecg_ray.scenario.plugins import resolve_plugin_name

SAMPLES = Path(__file__).parent / "samples"
V13 = sorted(p.stem for p in (SAMPLES / "v1.3").glob("*.json"))
V20 = sorted(p.stem for p in (SAMPLES / "v2.0").glob("*.json"))
ALL = [("v1.3", n) for n in V13] + [("v2.0", n) for n in V20]


def params(known_failures: dict[tuple[str, str], str]) -> list:
    """ALL as pytest params, less the samples with known problems: those have tests of their
    own below that pin the exact problem (so a change in behaviour still fails a test)."""
    return [pytest.param(v, n, id=f"{v}/{n}") for v, n in ALL if (v, n) not in known_failures]


def load(version: str, name: str) -> dict:
    return json.loads((SAMPLES / version / f"{name}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# What is drawn: a view of a v2.0 scenario as motiontext-renderer 1.5.0 reads it
# --------------------------------------------------------------------------------------------

BOX_FIELDS = ("backgroundColor", "boxBg", "border", "padding", "borderRadius", "opacity")


def resolve_defines(sc: dict) -> dict:
    """Replace every "define.a.b" string by its value (recursively, as 1.5.0 does)."""
    define = sc.get("define") or {}

    def look(ref: str, depth: int = 0) -> Any:
        cur: Any = define
        for part in ref[len("define."):].split("."):
            if not isinstance(cur, dict) or part not in cur:
                return ref  # unresolved: left as the string
            cur = cur[part]
        return res(cur, depth + 1)

    def res(v: Any, depth: int = 0) -> Any:
        if depth > 20:
            return v
        if isinstance(v, str) and v.startswith("define."):
            return look(v, depth)
        if isinstance(v, list):
            return [res(x, depth) for x in v]
        if isinstance(v, dict):
            return {k: res(x, depth) for k, x in v.items()}
        return v

    return res({k: v for k, v in sc.items() if k != "define"})


TEXT_FIELDS = ("fontFamily", "fontWeight", "fontSizeRel", "fontSize", "lineHeight", "color",
               "textShadow", "stroke", "align", "whiteSpace")


def _obj(v: Any) -> Any:
    # 1.5.0 reads pairs as objects ({x, y}, {width, height}); an array is not read at all.
    return v if isinstance(v, dict) or isinstance(v, str) else None


def _layout(layout: Any) -> Any:
    if not isinstance(layout, dict):
        return layout
    out = dict(layout)
    out["anchor"] = out.get("anchor") or "cc"  # 1.5.0's default anchor
    for k in ("position", "size"):
        if k in out:
            out[k] = _obj(out[k])
    if out.get("transformOrigin") in ("50% 50%", "center", "center center"):
        del out["transformOrigin"]  # the CSS default
    tr = out.get("transform")
    if isinstance(tr, dict):
        tr = {k: (_obj(v) if k in ("scale", "translate") else v) for k, v in tr.items() if k != "anchor"}
        out["transform"] = tr
    return out


def _style(style: Any) -> Any:
    if not isinstance(style, dict):
        return style
    return {k: v for k, v in style.items() if k in TEXT_FIELDS + BOX_FIELDS}


def _plugin(spec: Any, node_base: tuple[float, float] | None) -> Any:
    if not isinstance(spec, dict):
        return {"unresolved": spec}
    name = spec.get("name")
    canonical = resolve_plugin_name(name) if isinstance(name, str) else None
    base = spec.get("baseTime") or node_base
    window = None
    if isinstance(base, list) and len(base) == 2:
        base = tuple(base)
    if base is not None:
        window = plugin_window(spec.get("timeOffset", ["0%", "100%"]), float(base[0]), float(base[1]))
    return {
        "name": canonical or name,
        "params": spec.get("params") or {},
        "compose": spec.get("compose") or "replace",
        "window": list(window) if window else None,
    }


def render_view(sc: dict) -> dict:
    """What 1.5.0 draws from a v2.0 scenario, as plain data to compare.

    Kept: stage, fps, tracks (type, layer, overlap policy, safe area, default styles and
    constraints), and per cue its track and every node in tree order with its element type,
    text/src, the time it is shown (its displayTime, else its parent's, else the cue's,
    cut to the cue's domLifetime), layout, style, box style, effect scope, and its plugin
    chain (plugin, params, compose mode, and the absolute window it runs over).

    Fields are kept as 1.5.0 reads them: a style keeps only the fields it draws (so
    ``textAlign`` is dropped; ``align`` is what it reads), and a position, size, scale or
    translate written as an array (v1.3 style) shows as None, because 1.5.0 reads objects
    only and does not draw the array form.

    Ignored (legitimate differences): ids; key order; the define section (references are
    resolved first); domLifetime except where it hides a node; pluginApiVersion;
    ``transform.anchor`` (not read); anchor omitted vs "cc" and transformOrigin omitted vs
    "50% 50%" (the defaults); plugin aliases and @versions (fadeIn = fadein,
    typewriter@1.0.0 = typewriter); compose omitted vs "replace"; params omitted vs {};
    int vs float.
    """
    sc = resolve_defines(sc)
    tracks = {}
    for tr in sc.get("tracks", []):
        tracks[tr.get("id")] = {
            "type": tr.get("type"),
            "layer": tr.get("layer"),
            "overlapPolicy": tr.get("overlapPolicy"),
            "safeArea": tr.get("safeArea"),
            "defaultStyle": _style(tr.get("defaultStyle")),
            "defaultBoxStyle": tr.get("defaultBoxStyle"),
            "defaultConstraints": tr.get("defaultConstraints"),
        }
    cues = []
    for cue in sc.get("cues", []):
        explicit: list[tuple[float, float]] = []

        def collect(node: Any) -> None:
            if isinstance(node, dict):
                dt = node.get("displayTime")
                if isinstance(dt, list) and len(dt) == 2:
                    explicit.append((dt[0], dt[1]))
                if node.get("eType") == "group":
                    for c in node.get("children") or []:
                        collect(c)

        collect(cue.get("root"))
        dom = cue.get("domLifetime")
        if not dom:  # 1.5.0's default: around the nodes' own times
            dom = [min(s for s, _ in explicit) - 0.5, max(e for _, e in explicit) + 0.5] if explicit else None
        nodes: list[dict] = []

        def walk(node: Any, parent_time: Any, path: str) -> None:
            if not isinstance(node, dict):
                nodes.append({"path": path, "invalid": node})
                return
            shown = node.get("displayTime") or parent_time
            vis = None
            if shown:
                vis = [shown[0], shown[1]]
                if dom:
                    vis = [max(vis[0], dom[0]), min(vis[1], dom[1])]
            etype = node.get("eType")  # 1.5.0 reads eType only
            style = _style(node.get("style"))
            box = node.get("boxStyle")
            if etype == "group" and isinstance(style, dict) and not box:
                # 1.5.0 moves box fields of a group's style into its boxStyle.
                moved = {k: style[k] for k in BOX_FIELDS if k in style}
                if moved:
                    style = {k: v for k, v in style.items() if k not in BOX_FIELDS}
                    box = moved
            base = node.get("baseTime") or shown
            nodes.append({
                "path": path,
                "eType": etype,
                "text": node.get("text") if etype == "text" else None,
                "src": node.get("src") if etype in ("image", "video") else None,
                "shown": vis,
                "layout": _layout(node.get("layout")),
                "style": style,
                "boxStyle": box,
                "effectScope": node.get("effectScope"),
                "plugins": [_plugin(p, base) for p in node.get("pluginChain") or []],
            })
            if etype == "group":
                for j, child in enumerate(node.get("children") or []):
                    walk(child, shown, f"{path}.children[{j}]")

        walk(cue.get("root"), cue.get("displayTime"), "root")
        cues.append({"track": cue.get("track"), "nodes": nodes})
    stage = sc.get("stage") or {}
    return {
        "stage": {"baseAspect": stage.get("baseAspect"), "safeArea": stage.get("safeArea")},
        "fps": (sc.get("timebase") or {}).get("fps"),
        "tracks": tracks,
        "cues": cues,
    }


def diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf differences between two views: [(path, a, b)]; numbers equal within 1e-6."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            if k == "path":
                continue
            out += diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(f"{path}.len", len(a), len(b))]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        return [] if math.isclose(a, b, rel_tol=0, abs_tol=1e-6) else [(path, a, b)]
    return [] if a == b else [(path, a, b)]


# --------------------------------------------------------------------------------------------
# Known differences between our migration and the v2.0 samples (the samples are wrong there)
# --------------------------------------------------------------------------------------------

# Plugin windows. v1.3 ran a plugin over [absStart + relStartPct*D, absEnd + relEndPct*D]
# clamped to [absStart, absEnd] (so relEndPct > 0 meant "to the node's end"); 1.5.0 runs it
# over [start + timeOffset[0], end + timeOffset[1]] with no clamp, the second bound counting
# from the END. MotionText's old migrator wrote a fraction p as f"{p}%" ("0.1%" for 0.1: a
# hundredth of what was meant), 1.0 as "100%" and specs without rel fields as the default
# ["0%", "100%"]: windows that run a whole node past its end, so a 2-turn spin makes one turn
# while shown. Ours reproduces the v1.3 windows.
PLUGIN_WINDOW = "sample's timeOffset: fractions written as percents, ends not clamped to the node"
# waveY (v1.3 built-in, ty = +amp*sin) -> bobY (ty = -amp*sin): the sample kept +amp, so it
# bobs the other way.
WAVE_SIGN = "sample maps waveY to bobY without negating amplitudePx (moves the opposite way)"
# animated.json v2.0: two of the four cues were left half-migrated (root and text with
# type/content), which 1.5.0 does not read: the root is no group, so its text is never drawn.
# (As the sample is written; normalize() repairs those nodes, with a warning each, and they
# are drawn: test_half_converted_sample_is_repaired_with_a_warning_per_node.)
HALF_MIGRATED = "sample left type/content on these cues (1.5.0 reads eType/text only): text not drawn"
# The samples' cue groups have no displayTime. 1.5.0 mounts a node only inside a finite
# displayTime, so those groups are never mounted: their layout (flow/grid/position), box and
# effect scope are not applied and their children are put straight on the stage. v1.3 kept a
# cue's group mounted; ours gives a group that lays out or draws something the span of its
# children (bare groups are left as they are: nothing to draw either way).
GROUP_UNMOUNTED = "sample's cue group has no displayTime, so 1.5.0 never mounts it"
# basic/animated/plugin v2.0 keep the v1.3 array position [x, y]; 1.5.0 reads {x, y} only, so
# those texts are not positioned at all (they sit at the stage's top-left).
ARRAY_POSITION = "sample keeps the [x, y] position, which 1.5.0 does not read (not positioned)"
# v1.3 placed subtitle-track nodes by their bottom centre unless told otherwise; 1.5.0 uses
# the centre for every track.
SUBTITLE_ANCHOR = "v1.3 default anchor on subtitle tracks is bc; the sample leaves 1.5.0's cc"
# v1.3 samples wrote CSS's textAlign; 1.5.0 reads align only.
TEXT_ALIGN = "sample keeps textAlign, which 1.5.0 does not read (align)"

_GROUP = (r"cues\[\d+\]\.nodes\[0\]\.shown", GROUP_UNMOUNTED)
_ALIGN = (r"tracks\.\w+\.defaultStyle\.align", TEXT_ALIGN)
_POS = (r"cues\[\d+\]\.nodes\[1\]\.layout\.position", ARRAY_POSITION)
_ANCHOR = (r"cues\[\d+\]\.nodes\[1\]\.layout\.anchor", SUBTITLE_ANCHOR)
_WINDOW = (r"cues\[\d+\]\.nodes\[\d+\]\.plugins\[\d\]\.window\[\d\]", PLUGIN_WINDOW)

KNOWN_SAMPLE_DIFFS: dict[str, list[tuple[str, str]]] = {
    "animated": [(r"cues\[(0|3)\]\.nodes\.len", HALF_MIGRATED), _ALIGN, _POS, _ANCHOR],
    "animated_free_mixed": [
        _WINDOW, (r"cues\[1\]\.nodes\[1\]\.plugins\[0\]\.params\.amplitudePx", WAVE_SIGN),
    ],
    "animated_subtitle": [
        _WINDOW, (r"cues\[0\]\.nodes\[1\]\.plugins\[2\]\.params\.amplitudePx", WAVE_SIGN),
    ],
    "basic": [_ALIGN, _POS, _ANCHOR],
    "m5_layout_features": [_GROUP],  # flow/grid/absolute groups
    "plugin": [(r"cues\[0\]\.nodes\[0\]\.shown", GROUP_UNMOUNTED), _ALIGN, _POS, _ANCHOR],  # effectScope
    "plugin_local": [_WINDOW],
    "plugin_showcase": [_WINDOW],
    "tilted_box": [
        _WINDOW, (r"cues\[0\]\.nodes\[1\]\.plugins\[2\]\.params\.amplitudePx", WAVE_SIGN),
    ],
}

# cwi_demo_full v2.0 is not a migration of the v1.3 file but another export of the same
# transcript: track "caption" (v1.3: "captions"), no animation plugins at all, per-word
# baseTime instead of word windows, a define-based caption box, no stage safe area. Only the
# words and their timing are shared, and that is what is compared for it.
NOT_A_MIGRATION = {"cwi_demo_full"}


def _known(name: str, path: str) -> str | None:
    for pattern, reason in KNOWN_SAMPLE_DIFFS.get(name, []):
        if re.fullmatch(pattern, path):
            return reason
    return None


# --------------------------------------------------------------------------------------------
# Tests: normalize
# --------------------------------------------------------------------------------------------

# v2.0 samples that normalize() rejects: sample/normalize problems, not migration ones.
# (The v2.0 'animated' sample, half converted, was one until normalize() repaired v1.3-shaped
# nodes: every sample normalizes now. A sample added here needs a test pinning its error.)
NORMALIZE_FAILS: dict[tuple[str, str], str] = {}

REPAIRED_NODES = ["cues[0].root", "cues[0].root.children[0]", "cues[3].root", "cues[3].root.children[0]"]


def test_half_converted_sample_is_repaired_with_a_warning_per_node():
    """The v2.0 'animated' sample still has v1.3 nodes (type/content, no eType) on two of its
    four cues, which 1.5.0 would not draw: normalize() converts them with the migrator's node
    conversion and names each one in a warning."""
    sc = normalize(load("v2.0", "animated"))
    repaired = [w.split(":", 1)[0] for w in sc.warnings if "v1.3 node" in w]
    assert repaired == REPAIRED_NODES, sc.warnings
    # Every cue is planned and every node is v2.0 now.
    assert sc.cue_ranges == [(1, 4), (4, 8), (8, 12), (12, 16)]
    for cue in sc.scenario["cues"]:
        assert cue["root"]["eType"] == "group"
        assert [c["eType"] for c in cue["root"]["children"]] == ["text"]
        assert all("type" not in c and "content" not in c for c in cue["root"]["children"])
    # The repaired cues are drawn as the migration of the v1.3 twin draws them (the two cues
    # left as v2.0 keep the sample's own problems: KNOWN_SAMPLE_DIFFS).
    mine = render_view(normalize(load("v1.3", "animated")).scenario)
    theirs = render_view(sc.scenario)
    for i in (0, 3):
        assert diff(mine["cues"][i], theirs["cues"][i], f"cues[{i}]") == []
    assert theirs["cues"][3]["nodes"][1]["text"] == "페이드 인/아웃 효과 테스트"


def test_sample_with_older_plugin_names_uses_our_plugins_for_them():
    """with_assets_v20 animates with slideInLeft and fadeOut (older MotionText plugins, not among
    the 18 manifests): this project ships both, so nothing is dropped."""
    sc = normalize(load("v2.0", "with_assets_v20"))
    assert not [w for w in sc.warnings if "not installed" in w]
    assert {"slideInLeft", "fadeOut"} <= set(_plugin_names(sc.scenario))
    assert sc.cue_ranges


@pytest.mark.parametrize("version,name", params(NORMALIZE_FAILS))
def test_sample_normalizes(version, name):
    sc = normalize(load(version, name))
    assert not [w for w in sc.warnings if "not installed" in w], sc.warnings
    assert sc.scenario["version"] == "2.0"


# normalize() plans frames from node displayTimes only (cue_ranges); these samples time their
# nodes through define references, baseTime or the cue's displayTime, so no frame is planned
# and a render would draw nothing although the page draws them.
# normalize() reads define references, the cue's own displayTime and inherited times, so every
# sample's cues are planned (basic_v20, cwi_sentence_wave, dual_channel_test and
# plugin_test_combined were not, before).
# (and the half-converted v2.0 'animated' sample's too, now that its v1.3 nodes are repaired).
UNPLANNED: dict[tuple[str, str], str] = dict(NORMALIZE_FAILS)


@pytest.mark.parametrize("version,name", params(UNPLANNED))
def test_sample_cues_are_planned(version, name):
    """The middle of every cue lies in normalize()'s cue_ranges (else the frame is skipped)."""
    sc = normalize(load(version, name))
    mids = cue_middles(sc.scenario)
    assert mids
    assert [t for t in mids if not any(s <= t < e for s, e in sc.cue_ranges)] == []


def _plugin_names(sc: dict) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for spec in node.get("pluginChain") or []:
                if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                    names.add(spec["name"])
            for c in node.get("children") or []:
                walk(c)

    for cue in resolve_defines(sc).get("cues", []):
        walk(cue.get("root"))
    return names


def test_uninstalled_plugin_names_are_the_known_ones():
    """Plugin names in the samples (v1.3 after migration) that no installed plugin answers to."""
    missing = {}
    for version, name in ALL:
        data = load(version, name)
        if version == "v1.3" and str(data.get("version")).startswith("1."):
            data = migrate_v13(data)[0]
        bad = sorted(n for n in _plugin_names(data) if resolve_plugin_name(n) is None)
        if bad:
            missing[f"{version}/{name}"] = bad
    assert missing == {}


# --------------------------------------------------------------------------------------------
# Tests: migration against the v2.0 twin
# --------------------------------------------------------------------------------------------

PAIRS = [n for n in V13 if n in V20]


def test_eleven_pairs():
    assert len(PAIRS) == 11


def _migrated(name: str) -> dict:
    data = load("v1.3", name)
    if str(data.get("version")).startswith("1."):
        return migrate_v13(data)[0]
    return data  # dual_channel_test's "v1.3" file already says 2.0: normalize() keeps it


@pytest.mark.parametrize("name", [n for n in PAIRS if n not in NOT_A_MIGRATION])
def test_migration_matches_v20_sample(name):
    mine, theirs = render_view(_migrated(name)), render_view(load("v2.0", name))
    diffs = diff(mine, theirs)
    unexplained = [d for d in diffs if _known(name, d[0]) is None]
    assert unexplained == [], "\n".join(f"{p}: migrated={a!r} sample={b!r}" for p, a, b in unexplained)
    # Every listed known difference still exists (else the list is stale).
    for pattern, reason in KNOWN_SAMPLE_DIFFS.get(name, []):
        assert any(re.fullmatch(pattern, p) for p, _, _ in diffs), f"no longer differs: {pattern} ({reason})"


def test_cwi_demo_words_and_timing_match():
    """cwi_demo_full: same cues, same words in order, and each word's v1.3 window (absStart +
    params.t0 .. t1, now the cwi plugins' timeOffset) is the v2.0 sample's word baseTime."""
    mine, theirs = render_view(_migrated("cwi_demo_full")), render_view(load("v2.0", "cwi_demo_full"))
    assert len(mine["cues"]) == len(theirs["cues"]) == 25
    for i, (a, b) in enumerate(zip(mine["cues"], theirs["cues"])):
        words_a = [n for n in a["nodes"] if n["eType"] == "text"]
        words_b = [n for n in load("v2.0", "cwi_demo_full")["cues"][i]["root"]["children"]]
        assert [n["text"] for n in words_a] == [n["text"] for n in words_b], f"cue {i}"
        for n, w in zip(words_a, words_b):
            assert {p["name"] for p in n["plugins"]} <= {"cwi-loud", "cwi-color", "cwi-whisper", "cwi-bouncing"}
            for p in n["plugins"]:
                assert diff(p["window"], w["baseTime"]) == [], (i, n["text"], p["window"], w["baseTime"])


# --------------------------------------------------------------------------------------------
# Tests: migrator details and malformed input
# --------------------------------------------------------------------------------------------

def _v13(node: dict, **cue) -> dict:
    return {
        "version": "1.3", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
        "tracks": [{"id": "t", "type": "free", "layer": 1}],
        "cues": [{"id": "c", "track": "t", "root": {"e_type": "group", "children": [node]}, **cue}],
    }


def test_plugin_windows_reproduce_v13_clamping():
    node = {"e_type": "text", "text": "x", "absStart": 2, "absEnd": 6, "pluginChain": [
        {"name": "spin"},                                         # whole node
        {"name": "spin", "relStartPct": 0.25, "relEndPct": 0.5},  # end clamped to absEnd
        {"name": "spin", "relStart": 1, "relEnd": -1},            # [3, 5]
        {"name": "spin", "relStart": -3, "relEnd": 9},            # clamped to [2, 6]
    ]}
    sc, warnings = migrate_v13(_v13(node))
    chain = sc["cues"][0]["root"]["children"][0]["pluginChain"]
    assert [p["timeOffset"] for p in chain] == [["0%", "0%"], ["25%", "0%"], [1, -1], [0, 0]]
    assert [plugin_window(p["timeOffset"], 2, 6) for p in chain] == [(2, 6), (3, 6), (3, 5), (2, 6)]
    assert any("pluginChain[1].relEndPct" in w for w in warnings)


def test_hint_time_and_ids():
    node = {"e_type": "text", "text": "no times"}
    sc, _ = migrate_v13(_v13(node, hintTime={"start": 1, "end": 3}))
    cue = sc["cues"][0]
    assert cue["domLifetime"] == [1, 3]
    assert cue["root"]["children"][0]["displayTime"] == [1, 3]
    assert cue["root"]["id"] and cue["root"]["children"][0]["id"]
    # a hint narrower than the nodes' own times is widened: v1.3 let node times win
    node = {"e_type": "text", "text": "x", "absStart": 0.5, "absEnd": 4}
    assert migrate_v13(_v13(node, hintTime=1))[0]["cues"][0]["domLifetime"] == [0.5, 4]


@pytest.mark.parametrize("mutate,where", [
    (lambda d: d.pop("tracks"), "tracks"),
    (lambda d: d["cues"][0].update(track="nope"), "cues[0].track"),
    (lambda d: d["cues"][0]["root"]["children"][0].pop("absEnd"), "cues[0].root.children[0]"),
    (lambda d: d["cues"][0]["root"]["children"][0].update(absEnd=1), "cues[0].root.children[0]"),
    (lambda d: d["cues"][0]["root"]["children"][0].update(absStart="2"), "cues[0].root.children[0].absStart"),
    (lambda d: d["cues"][0]["root"]["children"][0].update(e_type="shape"), "cues[0].root.children[0].e_type"),
    (lambda d: d["cues"][0]["root"]["children"][0]["layout"].update(position=[0.5]),
     "cues[0].root.children[0].layout.position"),
    (lambda d: d["cues"][0]["root"]["children"][0]["pluginChain"][0].update(relEndPct=35),
     "cues[0].root.children[0].pluginChain[0].relEndPct"),
    (lambda d: d["cues"][0]["root"]["children"][0]["pluginChain"][0].update(relStart=3, relEnd=-2),
     "cues[0].root.children[0].pluginChain[0]"),
    (lambda d: d.update(timebase={"unit": "tc", "fps": 25}), "timebase.unit"),
])
def test_malformed_v13_names_the_path(mutate, where):
    node = {"e_type": "text", "text": "x", "absStart": 2, "absEnd": 6, "layout": {"position": [0.5, 0.5]},
            "pluginChain": [{"name": "spin", "relStartPct": 0, "relEndPct": 1}]}
    data = _v13(node)
    mutate(data)
    with pytest.raises(RenderError) as ei:
        normalize(data)
    assert ei.value.code == "invalid_scenario"
    assert ei.value.message.startswith(where + ":"), ei.value.message


# --------------------------------------------------------------------------------------------
# Tests: every sample in the real caption page
# --------------------------------------------------------------------------------------------

def cue_middles(sc: dict) -> list[float]:
    """Middle of each cue: halfway through the union of its nodes' shown times."""
    mids = []
    for cue in render_view(sc)["cues"]:
        spans = [n["shown"] for n in cue["nodes"] if n.get("shown")
                 and all(isinstance(t, (int, float)) and math.isfinite(t) for t in n["shown"])]
        if spans:
            mids.append((min(s for s, _ in spans) + max(e for _, e in spans)) / 2)
    return mids


@pytest.fixture(scope="module")
def page_results() -> dict:
    """Load every sample (normalized) in one caption page and seek to each cue's middle."""
    from ecg_ray.capture.browser import CaptionPage
    from ecg_ray.config import Settings
    from ecg_ray.scenario.assets import fetch_assets

    async def run() -> dict:
        results: dict[tuple[str, str], dict] = {}
        page = CaptionPage()
        await page.start()
        try:
            for version, name in ALL:
                try:
                    # define assets (relative paths) from the sample's own directory, as the
                    # command line takes them from the scenario file's
                    ready = fetch_assets(normalize(load(version, name)), Settings(), base_dir=str(SAMPLES / version))
                except RenderError as exc:
                    results[(version, name)] = {"normalize_error": str(exc)}
                    continue
                sc = ready.scenario
                mids = cue_middles(sc)
                n_err = len(page.stats.console_errors)
                n_blocked = len(page.stats.blocked_requests)
                load_warnings = await page.load(sc, 1280, 720, 25, ready.assets)
                boxes, prev = [], None
                for t in mids:
                    _, box, unchanged = await page.seek(t)
                    box = prev if unchanged else box  # unchanged: the box was not re-measured
                    boxes.append(box)
                    prev = box
                seen = await page._eval("window.__ecg.warnings.slice()")
                results[(version, name)] = {
                    "mids": mids,
                    "boxes": boxes,
                    "warnings": list(load_warnings) + list(seen or []),
                    "errors": page.stats.console_errors[n_err:],
                    "blocked": page.stats.blocked_requests[n_blocked:],
                    "assets": {k: a.content_type for a in ready.assets.values() for k in a.keys},
                    "normalize_warnings": list(ready.warnings),
                }
                if ready.assets:  # what the page drew of them, at the first cue's middle
                    await page.seek(mids[0])
                    results[(version, name)]["shot"] = await page.capture((0, 0, 1280, 720))
        finally:
            await page.close()
        return results

    return asyncio.run(run())


# Samples whose page draw is pinned by a test of its own below (none now: the half-converted
# v2.0 'animated' sample draws, test_repaired_sample_draws_every_cue).
DRAW_FAILS = dict(NORMALIZE_FAILS)


@pytest.mark.parametrize("version,name", params(DRAW_FAILS))
def test_sample_draws_in_caption_page(page_results, version, name):
    res = page_results[(version, name)]
    assert "normalize_error" not in res, res
    assert res["errors"] == []
    assert [w for w in res["warnings"] if re.search(r"unknown plugin|not (installed|registered|found)", w, re.I)] == []
    assert res["mids"], "no cue has a time"
    assert any(box is not None for box in res["boxes"]), res


def test_repaired_sample_draws_every_cue(page_results):
    """The half-converted v2.0 'animated' sample renders with no error: each of its four cues
    (two of them repaired from v1.3 nodes) draws something at its middle, and the job's
    warnings name every repaired node."""
    res = page_results[("v2.0", "animated")]
    assert "normalize_error" not in res, res
    assert res["errors"] == [] and res["blocked"] == []
    assert len(res["mids"]) == 4
    assert all(box is not None for box in res["boxes"]), res["boxes"]
    assert [w.split(":", 1)[0] for w in res["normalize_warnings"] if "v1.3 node" in w] == REPAIRED_NODES


def test_v13_defaults_that_1_5_0_does_not_share():
    """waveY -> bobY moving the same way; subtitle nodes anchored bottom-centre; a group that
    lays something out is mounted over its children's span; a bare group is left alone."""
    text = {"e_type": "text", "text": "x", "absStart": 1, "absEnd": 3, "layout": {"position": [0.5, 0.9]},
            "pluginChain": [{"name": "waveY", "params": {"amplitudePx": 5, "frequency": 3}}]}
    data = _v13(text)
    data["tracks"][0]["type"] = "subtitle"
    data["cues"][0]["root"]["children"].append({"e_type": "text", "text": "y", "absStart": 2, "absEnd": 5})
    sc, _ = migrate_v13(data)
    root = sc["cues"][0]["root"]
    node = root["children"][0]
    assert node["pluginChain"][0]["name"] == "bobY"
    assert node["pluginChain"][0]["params"] == {"amplitudePx": -5, "cycles": 3}
    assert node["layout"] == {"position": {"x": 0.5, "y": 0.9}, "anchor": "bc"}
    assert "displayTime" not in root  # bare group
    data["cues"][0]["root"]["layout"] = {"mode": "flow", "position": {"x": 0.5, "y": 0.9}, "anchor": "bc"}
    assert migrate_v13(data)[0]["cues"][0]["root"]["displayTime"] == [1, 5]


def test_sample_with_define_assets_draws_with_its_assets(page_results):
    """with_assets_v20 names a font and a logo by paths relative to itself, files the sample does
    not ship: tests/samples/v2.0/fonts and images hold stand-ins (tests/data/make_test_assets.py:
    a WOFF2 whose glyphs are solid blocks, under the sample's font name, and a 64x64 orange
    square with a teal border). Both are fetched, served from memory, and drawn: the logo at
    its place (top left: 1.5.0 reads no [x, y] array as a position, so the sample's
    define.layout.logo_position puts it at 0, 0, at its own 64x64 pixels since the array size is
    not read either), no request is refused and nothing fails."""
    import io

    import numpy as np
    from PIL import Image

    res = page_results[("v2.0", "with_assets_v20")]
    assert "normalize_error" not in res, res
    assert res["assets"] == {"custom_font": "font/woff2", "logo_image": "image/png"}
    assert res["errors"] == [] and res["blocked"] == [], (res["errors"], res["blocked"])
    assert [w for w in res["warnings"] if re.search(r"unknown plugin|not (installed|registered|found)|"
                                                    r"failed to load asset", w, re.I)] == []
    assert any(box is not None for box in res["boxes"]), res
    shot = np.asarray(Image.open(io.BytesIO(res["shot"])).convert("RGBA")).astype(int)
    orange = (abs(shot[..., 0] - 0xFF) < 12) & (abs(shot[..., 1] - 0x6B) < 12) & (abs(shot[..., 2] - 0x35) < 12)
    teal = (abs(shot[..., 0] - 0x4E) < 12) & (abs(shot[..., 1] - 0xCD) < 12) & (abs(shot[..., 2] - 0xC4) < 12)
    assert orange[12:52, 12:52].all() and teal[2:6, 2:62].all(), "the logo is not drawn at the top left"
    assert teal[64:].sum() == 0 and teal[:, 64:].sum() == 0  # (the title is orange too: only the border is checked)
