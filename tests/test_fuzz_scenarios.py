"""Hostile scenarios: ``normalize`` (and the v1.3 migration behind it) fuzzed with Hypothesis.

Whatever a caller sends, ``normalize`` returns a v2.0 scenario the page can load, or raises
``RenderError("invalid_scenario")`` whose one-line message starts with a JSON path into what was
sent. Never another exception, never more than a second of CPU, never a change to the caller's
data. Then a few accepted fuzzed scenarios are drawn by the real caption page.

Runs are reproducible (``derandomize=True``, no example database): CI sees the same examples
every time. ``ECG_FUZZ_EXAMPLES`` scales the example counts for a longer local hunt, and
``ECG_FUZZ_RANDOM=1`` draws new examples each run (not reproducible: for hunting, not CI).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from ecg_ray.errors import RenderError
from ecg_ray.scenario.migrate_v13 import migrate_v13
from ecg_ray.scenario.model import MAX_CUES, MAX_DEPTH, MAX_TEXT_CHARS
from ecg_ray.scenario.normalize import normalize, wrap_lines

SCALE = float(os.environ.get("ECG_FUZZ_EXAMPLES", "1"))
DERANDOMIZE = os.environ.get("ECG_FUZZ_RANDOM", "") != "1"
CPU_LIMIT_S = 1.0


def fuzz_settings(n: int, **kw: Any) -> settings:
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=DERANDOMIZE, database=None,
                    suppress_health_check=list(HealthCheck), **kw)


# -- what is generated ------------------------------------------------------------------------

PLUGINS = ["fadein", "fadeIn", "pop", "slideup", "typewriter", "scalepop@1.0.0", "cwi@1.0.0", "waveY", "bobY",
           "glitch", "flames", "nope", "", "../../etc/passwd", "__proto__", "constructor", "a" * 300]
HOSTILE_TEXT = [
    "", " ", "   ", "\n", "\r\n\r\n", "\t", "\x00", "\x00\x01\x02\x1b[31m\x7f", "\u202eevil\u202c", "\ufeff",
    "مرحبا بالعالم", "שלום עולם", "안녕하세요 세계 ", "한국어자막" * 30, "😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈", "e\u0301\u0301\u0301\u0301",
    "<script>alert(1)</script>", "</div><img src=x onerror=alert(1)>", "${1+1}{{7*7}}", "define.", "define.a.b",
    "0%", "-70%", "100%", "1e309", "NaN", "-0", "x" * MAX_TEXT_CHARS, "가" * MAX_TEXT_CHARS, "y" * (MAX_TEXT_CHARS + 1),
    "a\ud800b",  # an unpaired surrogate: no Unicode text
    "word " * 400, "\u2028\u2029\x85",
]
KEYS = ["version", "cues", "tracks", "root", "children", "eType", "e_type", "type", "text", "content", "displayTime",
        "absStart", "absEnd", "hintTime", "domLifetime", "start", "end", "effect", "pluginChain", "plugin", "name",
        "timeOffset", "relStart", "relEnd", "relStartPct", "relEndPct", "params", "layout", "position", "anchor",
        "style", "define", "definitions", "id", "track", "timebase", "unit", "fps", "stage", "src", "transform",
        "scale", "rotate", "translate", "size", "padding", "defaultStyle", "scaleMode", "t0", "t1", "kind",
        "compose", "mute", "wordStream", "__proto__"]
NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e-300, -1e-9, 1e15, 1e308, -1e308, 2**53 + 1, 0.1 + 0.2, 14400.0, 36000.0]),
)
TEXT = st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE_TEXT))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
# Keys without ".[]" so that an error's path can be walked back into the input.
KEY = st.one_of(st.sampled_from(KEYS), st.text(st.characters(exclude_characters=".[]:"), max_size=8))
TREES = st.recursive(SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                      st.dictionaries(KEY, kids, max_size=5)), max_leaves=25)
VERSIONS = st.sampled_from(["2.0", "1.3", "1.0", "1.", "2", "9.9", 2.0, 1.3, None, "", ["2.0"], {"v": 1}])

TIME = st.floats(min_value=0, max_value=30, allow_nan=False)
DUR = st.floats(min_value=0.04, max_value=8, allow_nan=False)
CAPTION = st.one_of(st.sampled_from(["안녕하세요 Hello", "مرحبا", "😀 emoji", "두 줄\n자막", "x"]), st.text(min_size=1, max_size=40))


@st.composite
def simple_scenarios(draw) -> dict:
    cues = []
    for _ in range(draw(st.integers(1, 4))):
        s, d = draw(TIME), draw(DUR)
        cue: dict[str, Any] = {"start": s, "end": s + d, "text": draw(CAPTION)}
        if draw(st.booleans()):
            cue["effect"] = draw(st.sampled_from(PLUGINS))
        cues.append(cue)
    return {"version": "1.3", "cues": cues}


@st.composite
def v20_scenarios(draw) -> dict:
    cues = []
    for i in range(draw(st.integers(1, 3))):
        s, d = draw(TIME), draw(DUR)
        text = {"id": f"t{i}", "eType": "text", "text": draw(CAPTION), "displayTime": [s, s + d],
                "layout": {"position": {"x": draw(st.floats(0, 1)), "y": draw(st.floats(0, 1))}, "anchor": "bc"}}
        if draw(st.booleans()):
            text["pluginChain"] = [{"name": draw(st.sampled_from(PLUGINS)),
                                    "timeOffset": [draw(st.sampled_from(["0%", "10%", 0, 0.5])),
                                                   draw(st.sampled_from(["0%", "-70%", "100%", 0, -0.2]))]}]
        root = {"id": f"g{i}", "eType": "group", "children": [text]}
        cue: dict[str, Any] = {"id": f"c{i}", "track": "t", "root": root}
        if draw(st.booleans()):
            cue["domLifetime"] = [s, s + d]
        cues.append(cue)
    return {"version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
            "tracks": [{"id": "t", "type": "subtitle", "layer": 1,
                        "defaultStyle": {"fontSizeRel": 0.06, "color": "#fff"}}],
            "cues": cues}


@st.composite
def v13_scenarios(draw) -> dict:
    cues = []
    for i in range(draw(st.integers(1, 3))):
        s, d = draw(TIME), draw(DUR)
        text = {"id": f"t{i}", "e_type": "text", "content": draw(CAPTION), "absStart": s, "absEnd": s + d,
                "layout": {"position": [draw(st.floats(0, 1)), draw(st.floats(0, 1))]}}
        if draw(st.booleans()):
            text["pluginChain"] = [{"name": draw(st.sampled_from(PLUGINS)),
                                    "relStartPct": draw(st.sampled_from([0, 0.2])),
                                    "relEndPct": draw(st.sampled_from([0, 0.5, 1]))}]
        if draw(st.booleans()):
            text["plugin"] = {"name": draw(st.sampled_from(PLUGINS)), "params": {"kind": "loud", "t0": 0, "t1": d}}
        cue: dict[str, Any] = {"id": f"c{i}", "track": "t", "root": {"e_type": "group", "children": [text]}}
        if draw(st.booleans()):
            cue["hintTime"] = {"start": s, "end": s + d}
        cues.append(cue)
    return {"version": "1.3", "timebase": {"unit": "seconds"},
            "tracks": [{"id": "t", "type": draw(st.sampled_from(["subtitle", "free"])),
                        "defaultStyle": {"textAlign": "center", "boxBg": "#000"}}],
            "cues": cues}


def _slots(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in the tree: the places a mutation can hit."""
    out, stack = [], [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append(v)
    return out


@st.composite
def near_valid(draw) -> dict:
    """A valid scenario of one of the three shapes, then 0-3 hostile edits anywhere in it."""
    data = draw(st.one_of(simple_scenarios(), v20_scenarios(), v13_scenarios()))
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(data)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["scalar", "number", "text", "tree", "delete", "wrap", "empty"]))
        if op == "delete":
            del container[key]
        elif op == "scalar":
            container[key] = draw(SCALARS)
        elif op == "number":
            container[key] = draw(NUMBERS)
        elif op == "text":
            container[key] = draw(st.sampled_from(HOSTILE_TEXT))
        elif op == "tree":
            container[key] = draw(TREES)
        elif op == "wrap":
            container[key] = [container[key]]
        else:
            container[key] = draw(st.sampled_from([[], {}, ""]))
    return data


# -- the property ---------------------------------------------------------------------------------

_PATH_START = re.compile(r"^([A-Za-z_][^\s:.\[]*)")
_PATH_PART = re.compile(r'\.([^\s:.\[]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_NO_PATH = ("scenario must be a JSON object", "scenario is not valid JSON")


def _walk_path(data: Any, message: str) -> str | None:
    """Follow the path an error names through the input: None if it leads somewhere real (a
    missing dict key may end it: that is the field being named), else what went wrong."""
    head = message.split(": ", 1)[0]
    m = _PATH_START.match(head)
    if m:
        first, rest = m.group(1), head[m.end():]
        parts: list[Any] = [first]
    elif head.startswith("["):
        rest, parts = head, []
    else:
        return f"no path at the start of {message!r}"
    pos = 0
    while pos < len(rest):
        pm = _PATH_PART.match(rest, pos)
        if not pm:
            return f"cannot parse path {head!r}"
        if pm.group(3) is not None:
            parts.append(json.loads(pm.group(3)))  # a quoted key
        else:
            parts.append(pm.group(1) if pm.group(1) is not None else int(pm.group(2)))
        pos = pm.end()
    if parts == ["scenario"]:
        return None  # the whole scenario
    cur = data
    for part in parts:
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                return f"{head!r}: index [{part}] is not in the input"
            cur = cur[part]
        else:
            if not isinstance(cur, dict):
                return f"{head!r}: .{part} goes into a {type(cur).__name__}"
            if part not in cur:
                return None  # naming a missing field (or one under it) is right
            cur = cur[part]
    return None


def check_normalize(data: Any) -> Any:
    """The property. Returns the Scenario, or None when refused."""
    before = json.dumps(data, sort_keys=True, default=repr)
    t0 = time.thread_time()  # this thread's CPU: other tests loading the machine do not count
    try:
        sc = normalize(data)
    except RenderError as exc:
        spent = time.thread_time() - t0
        assert exc.code == "invalid_scenario", (exc.code, exc.message)
        msg = exc.message
        assert "\n" not in msg and len(msg) < 1000, msg[:2000]
        if not msg.startswith(_NO_PATH):
            problem = _walk_path(data, msg)
            assert problem is None, problem
        sc = None
    except Exception as exc:  # noqa: BLE001 - the property: nothing else escapes
        raise AssertionError(f"normalize raised {type(exc).__name__}: {str(exc)[:300]}") from exc
    else:
        spent = time.thread_time() - t0
        out = sc.scenario
        assert out["version"] == "2.0"
        assert isinstance(out["tracks"], list) and isinstance(out["cues"], list)
        assert len(sc.cue_ranges) == len(out["cues"]) <= MAX_CUES
        for s, e in sc.cue_ranges:
            assert s >= 0 and not math.isnan(s) and not math.isnan(e) and e >= s, sc.cue_ranges
        json.dumps(out)  # what the page is sent (NaN/Infinity are JS literals: allowed)
        for w in sc.warnings:
            assert isinstance(w, str) and "\n" not in w and len(w) < 2000, w[:3000]
        # The same answer every time.
        again = normalize(data)
        assert json.dumps(again.scenario, sort_keys=True) == json.dumps(out, sort_keys=True)
    assert spent < CPU_LIMIT_S, f"normalize took {spent:.2f}s of CPU"
    after = json.dumps(data, sort_keys=True, default=repr)
    assert after == before, "normalize changed the caller's data"
    return sc


@fuzz_settings(200)
@given(TREES)
def test_any_json_value(data):
    check_normalize(data)


@fuzz_settings(200)
@given(st.fixed_dictionaries({"version": VERSIONS}, optional={"cues": TREES, "tracks": TREES, "definitions": TREES,
                                                              "define": TREES, "timebase": TREES, "stage": TREES}))
def test_random_trees_with_a_version(data):
    check_normalize(data)


@fuzz_settings(400)
@given(near_valid())
def test_near_valid_scenarios(data):
    check_normalize(data)


@fuzz_settings(150)
@given(st.one_of(v13_scenarios(), near_valid().filter(lambda d: d.get("version") == "1.3" and "tracks" in d)))
def test_v13_migration_alone(data):
    """``migrate_v13`` on its own: a v2.0 document, or invalid_scenario naming a v1.3 path."""
    if not isinstance(data.get("tracks"), list) or not isinstance(data.get("cues"), list):
        return
    before = json.dumps(data, sort_keys=True, default=repr)
    try:
        out, warnings = migrate_v13(data)
    except RenderError as exc:
        assert exc.code == "invalid_scenario"
        assert _walk_path(data, exc.message) is None, exc.message
    else:
        assert out["version"] == "2.0" and isinstance(out["cues"], list) and len(out["cues"]) == len(data["cues"])
        assert all(isinstance(w, str) for w in warnings)
        json.dumps(out, default=repr)
    assert json.dumps(data, sort_keys=True, default=repr) == before


@fuzz_settings(200)
@given(st.lists(st.one_of(CAPTION, st.sampled_from(HOSTILE_TEXT)), min_size=1, max_size=6).map("".join),
       st.sampled_from([16 / 9, 9 / 16, 4 / 3, 1.0, 21 / 9]))
def test_simple_cue_text_is_kept_whole(text, aspect):
    """Line breaking loses, adds and reorders no character (only breaks at spaces/newlines)."""
    assume(len(text) <= MAX_TEXT_CHARS)
    data = {"version": "1.3", "cues": [{"start": 0, "end": 1, "text": text}]}
    sc = check_normalize(data)
    if sc is None:
        assert "\ud800" in text  # the only refusal: no Unicode text
        return
    nodes = sc.scenario["cues"][0]["root"]["children"]
    drawn = "".join(n["text"] for n in nodes).replace("\u2060define.", "define.")
    assert "".join(drawn.split()) == "".join(text.split())
    max_units = 0.8 * aspect / 0.06
    lines = wrap_lines(text, max_units)
    if lines == [""]:
        assert not text.strip()  # nothing but whitespace
        return
    for line in lines:
        assert line.strip() and (len(line) == 1 or len(line) <= 2 * max_units + 2), line


# -- explicit hostile shapes ----------------------------------------------------------------------

def _deep(levels: int) -> dict:
    node: Any = {"id": "n", "eType": "text", "text": "bottom", "displayTime": [0, 1]}
    for i in range(levels):
        node = {"id": f"g{i}", "eType": "group", "children": [node]}
    return {"version": "2.0", "tracks": [{"id": "t"}], "cues": [{"id": "c", "track": "t", "root": node}]}


def _deep_v13(levels: int) -> dict:
    node: Any = {"e_type": "text", "content": "bottom", "absStart": 0, "absEnd": 1}
    for _ in range(levels):
        node = {"e_type": "group", "children": [node]}
    return {"version": "1.3", "tracks": [{"id": "t", "type": "subtitle"}], "cues": [{"track": "t", "root": node}]}


def _junk(levels: int) -> dict:
    junk: Any = 1
    for _ in range(levels):
        junk = [junk]
    return {"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "x", "userData": junk}]}


@pytest.mark.parametrize("make", [_deep, _deep_v13, _junk])
def test_deep_nesting_is_refused_by_depth_not_recursion(make):
    ok = check_normalize(make(MAX_DEPTH // 2 - 4))   # nesting real scenarios might have still works
    assert ok is not None
    for levels in (MAX_DEPTH, 1000, 20_000):
        with pytest.raises(RenderError) as ei:
            normalize(make(levels))
        assert ei.value.code == "invalid_scenario" and f"deeper than {MAX_DEPTH} levels" in ei.value.message
        assert ei.value.message.startswith("cues[0]."), ei.value.message[:200]


def test_many_and_long_cues_stay_fast():
    # Well within the request size limit (16 MiB): 500 cues of 2,000 Korean characters without
    # a space (3 MB of UTF-8) took 11 s of CPU before line breaking was made linear.
    data = {"version": "1.3", "cues": [{"start": i, "end": i + 1, "text": "가" * MAX_TEXT_CHARS} for i in range(500)]}
    t0 = time.thread_time()
    sc = normalize(data)
    assert time.thread_time() - t0 < 5.0  # about 1.5 s now
    assert len(sc.cue_ranges) == 500
    # Over the cue limit: refused at once, whatever the shape (no deep copy of 100,000 cues first).
    v2 = _deep(0)
    v2["cues"] = v2["cues"] * 100_000
    for data in ({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "x"}] * 100_000}, v2):
        t0 = time.thread_time()
        with pytest.raises(RenderError, match=r"^invalid_scenario: cues: has 100000 cues; at most 20000"):
            normalize(data)
        assert time.thread_time() - t0 < 0.5


def test_error_messages_do_not_echo_huge_input():
    huge = "v" * 1_000_000
    for data in ({"version": huge, "tracks": [], "cues": [None]},
                 {"version": "2.0", "tracks": [{"id": "t"}], "cues": [{"track": huge, "root": {}}]},
                 {"version": "1.3", "tracks": [{"id": "t"}], "cues": [{"track": "t", "root": {"e_type": huge}}]}):
        with pytest.raises(RenderError) as ei:
            normalize(data)
        assert ei.value.code == "invalid_scenario" and len(ei.value.message) < 300, ei.value.message[:400]


# -- accepted fuzzed scenarios in the real caption page ---------------------------------------------

class _PageRun:
    """One Chromium for the module, driven from a private event loop."""

    def __init__(self) -> None:
        from ecg_ray.capture.browser import CaptionPage

        self.loop = asyncio.new_event_loop()
        self.page = CaptionPage()
        self.crashes: list[str] = []
        self.uncaught: list[str] = []
        self.run(self.page.start())
        self._listen()

    def _listen(self) -> None:
        p = self.page._page
        p.on("crash", lambda _p: self.crashes.append("page crashed"))
        p.on("pageerror", lambda exc: self.uncaught.append(str(exc)[:300]))

    def run(self, coro, timeout: float = 30.0):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        self.run(self.page.close())
        self.loop.close()


@pytest.fixture(scope="module")
def page_run():
    pr = _PageRun()
    yield pr
    pr.close()


CANARY = {"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "카나리아 canary"}]}


def test_accepted_fuzzed_scenarios_draw_in_the_real_page(page_run):
    from ecg_ray.rendering.still import render_still_async

    def still(scenario, at):
        img, _ = page_run.run(render_still_async(page_run.page, scenario, at, width=320, height=180, fps=25))
        return img

    canary = still(CANARY, 0.5)
    assert canary[..., 3].max() == 255  # the canary draws something
    drawn: list[dict] = []

    @fuzz_settings(10, phases=[Phase.generate])
    @given(near_valid())
    def draw(data):
        try:
            sc = normalize(data)
        except RenderError:
            assume(False)
        times = [0.0] + [s + min(e - s, 5.0) / 2 for s, e in sc.cue_ranges[:2] if math.isfinite(s)] + [31.0]
        for t in times:
            try:
                img = still(data, t)
            except RenderError as exc:
                # What normalize() accepts, the page loads and draws: a refusal here would be a
                # job failing with scenario_error after it was accepted.
                raise AssertionError(f"{exc} for {json.dumps(data, default=repr)[:1500]}") from None
            assert img.shape == (180, 320, 4)
        assert page_run.crashes == [], page_run.crashes
        assert page_run.uncaught == [], (page_run.uncaught, json.dumps(data, default=repr)[:2000])
        drawn.append(data)

    draw()
    assert len(drawn) >= 8, len(drawn)
    # The page still draws what it drew before the fuzzed scenarios, pixel for pixel.
    assert page_run.run(page_run.page._eval("1 + 1")) == 2
    again = still(CANARY, 0.5)
    assert (again == canary).all()
