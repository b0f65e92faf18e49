"""normalize(): v1.3-shaped nodes inside a v2.0 scenario are repaired (migrate.py's node
conversion) with a warning naming each one; the documented limits (cue count, text length)
are enforced with the JSON path; the older plugin names resolve to the plugins that draw them."""

from __future__ import annotations

import copy

import pytest

from ecg_ray.errors import RenderError
from ecg_ray.scenario.model import MAX_CUES, MAX_TEXT_CHARS
from ecg_ray.scenario.normalize import MAX_REPAIR_WARNINGS, normalize
from ecg_ray.scenario.plugins import installed_plugins, resolve_plugin_name


def v20(*children: dict, track_type: str = "free", **cue) -> dict:
    return {
        "version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
        "tracks": [{"id": "t", "type": track_type, "layer": 1}],
        "cues": [{"id": "c", "track": "t", **cue,
                  "root": {"id": "g", "eType": "group", "children": list(children)}}],
    }


V13_TEXT = {
    "id": "old", "type": "text", "content": "예전 노드 old node", "absStart": 1, "absEnd": 3,
    "layout": {"position": [0.5, 0.8], "transform": {"scale": [1.5, 1.5]}},
    "pluginChain": [{"name": "fadeIn", "relStartPct": 0, "relEndPct": 0.5}],
}
REPAIRED = "a MotionText v1.3 node"


def repaired_paths(sc) -> list[str]:
    return [w.split(":", 1)[0] for w in sc.warnings if REPAIRED in w]


def test_v13_text_node_in_v20_is_converted_like_the_migrator_does():
    new = {"id": "new", "eType": "text", "text": "v2", "displayTime": [0, 1]}
    sc = normalize(v20(new, copy.deepcopy(V13_TEXT), track_type="subtitle"))
    node = sc.scenario["cues"][0]["root"]["children"][1]
    assert node["eType"] == "text" and node["text"] == "예전 노드 old node"
    assert "type" not in node and "content" not in node and "absStart" not in node
    assert node["id"] == "old"
    assert node["displayTime"][0] == 1 and abs(node["displayTime"][1] - 3) < 1e-5
    # [x, y] pairs as objects, subtitle track anchored bottom-centre (v1.3's default there)
    assert node["layout"]["position"] == {"x": 0.5, "y": 0.8} and node["layout"]["anchor"] == "bc"
    assert node["layout"]["transform"]["scale"] == {"x": 1.5, "y": 1.5}
    # the v1.3 plugin window (clamped to the node) as an explicit timeOffset; the alias resolved
    assert node["pluginChain"] == [{"name": "fadein", "timeOffset": ["0%", "0%"]}]
    assert sc.cue_ranges == [(0, 3)]
    assert repaired_paths(sc) == ["cues[0].root.children[1]"]
    # the v2.0 node next to it is untouched
    assert sc.scenario["cues"][0]["root"]["children"][0]["text"] == "v2"


def test_v13_root_and_e_type_and_content_only_nodes():
    data = v20()
    data["cues"][0]["root"] = {"id": "g", "e_type": "group", "children": [
        {"e_type": "text", "text": "no id", "absStart": 0, "absEnd": 2},   # no id: one is made
        {"id": "eonly", "eType": "text", "content": "content only", "displayTime": [1, 2]},
    ]}
    sc = normalize(data)
    root = sc.scenario["cues"][0]["root"]
    assert root["eType"] == "group" and "e_type" not in root
    a, b = root["children"]
    assert a["eType"] == "text" and a["text"] == "no id" and isinstance(a["id"], str) and a["id"]
    assert b["text"] == "content only" and "content" not in b
    assert repaired_paths(sc) == ["cues[0].root", "cues[0].root.children[0]", "cues[0].root.children[1]"]


def test_node_times_from_cue_domlifetime_when_it_has_none():
    """A v1.3 node without times took its cue's hintTime, which a v2.0 export calls domLifetime."""
    sc = normalize(v20({"id": "x", "type": "text", "content": "hi"}, domLifetime=[2, 5]))
    node = sc.scenario["cues"][0]["root"]["children"][0]
    assert node["displayTime"][0] == 2 and abs(node["displayTime"][1] - 5) < 1e-5
    assert sc.cue_ranges == [(2, 5)]


def test_a_v20_scenario_without_v13_nodes_is_not_touched():
    data = v20({"id": "x", "eType": "text", "text": "hi", "displayTime": [0, 1],
                "layout": {"position": {"x": 0.5, "y": 0.5}}})
    sc = normalize(data)
    assert sc.warnings == []
    assert sc.scenario["cues"][0]["root"]["children"][0]["layout"] == {"position": {"x": 0.5, "y": 0.5}}


def test_many_repaired_nodes_are_named_up_to_a_limit_then_counted():
    n = MAX_REPAIR_WARNINGS + 5
    nodes = [{"id": f"n{i}", "type": "text", "content": str(i), "absStart": i, "absEnd": i + 1} for i in range(n)]
    sc = normalize(v20(*nodes))
    named = repaired_paths(sc)
    assert named[:MAX_REPAIR_WARNINGS] == [f"cues[0].root.children[{i}]" for i in range(MAX_REPAIR_WARNINGS)]
    assert [w for w in sc.warnings if w.startswith(f"cues[0].root.children[{MAX_REPAIR_WARNINGS}]:")] == [
        f"cues[0].root.children[{MAX_REPAIR_WARNINGS}]: and 4 more v1.3 nodes after it converted the same way"]
    assert len(sc.scenario["cues"][0]["root"]["children"]) == n


@pytest.mark.parametrize("node,where,what", [
    ({"id": "x", "text": "no type at all", "displayTime": [0, 1]}, "cues[0].root.children[0].eType",
     "unknown element type None"),
    ({"id": "x", "type": "shape", "content": "?"}, "cues[0].root.children[0].type", "unknown element type 'shape'"),
    ({"id": "x", "type": "text", "content": "x", "absStart": 1}, "cues[0].root.children[0]",
     "absStart and absEnd must be given together"),
    ({"id": "x", "type": "text", "content": 5, "absStart": 0, "absEnd": 1}, "cues[0].root.children[0].content",
     "must be a string"),
    ({"id": "x", "type": "text", "content": "x", "absStart": 0, "absEnd": 1, "pluginChain": [{"name": "nope"}]},
     "cues[0].root.children[0].pluginChain[0].name", "is not installed"),
    ({"id": "x", "type": "text", "content": "x" * (MAX_TEXT_CHARS + 1), "absStart": 0, "absEnd": 1},
     "cues[0].root.children[0].text", f"at most {MAX_TEXT_CHARS}"),
])
def test_nodes_of_neither_shape_or_broken_v13_nodes_fail_naming_the_path(node, where, what):
    with pytest.raises(RenderError) as ei:
        normalize(v20(node))
    assert ei.value.code == "invalid_scenario"
    assert ei.value.message.startswith(where + ":") and what in ei.value.message, ei.value.message


# -- documented limits --------------------------------------------------------------------------

@pytest.mark.parametrize("data,where", [
    ({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "가" * (MAX_TEXT_CHARS + 1)}]}, "cues[0].text"),
    (v20({"id": "x", "eType": "text", "text": "a" * (MAX_TEXT_CHARS + 1), "displayTime": [0, 1]}),
     "cues[0].root.children[0].text"),
    ({"version": "1.3", "timebase": {"unit": "seconds"}, "tracks": [{"id": "t", "type": "free"}],
      "cues": [{"id": "c", "track": "t", "root": {"e_type": "text", "text": "a" * (MAX_TEXT_CHARS + 1),
                                                  "absStart": 0, "absEnd": 1}}]}, "cues[0].root.text"),
])
def test_oversized_text_is_refused_with_its_path(data, where):
    with pytest.raises(RenderError) as ei:
        normalize(data)
    assert ei.value.message.startswith(f"{where}: is {MAX_TEXT_CHARS + 1} characters; at most {MAX_TEXT_CHARS}")


def test_text_at_the_limit_and_cue_count_limit():
    normalize({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "가" * MAX_TEXT_CHARS}]})
    cue = {"start": 0, "end": 1, "text": "x"}
    with pytest.raises(RenderError) as ei:
        normalize({"version": "1.3", "cues": [cue] * (MAX_CUES + 1)})
    assert ei.value.message.startswith(f"cues: has {MAX_CUES + 1} cues; at most {MAX_CUES} are allowed")


def test_documented_limits_match_the_code():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"{MAX_CUES:,} cues" in readme and f"{MAX_TEXT_CHARS:,} characters" in readme


# -- older plugin names -------------------------------------------------------------------------

@pytest.mark.parametrize("name,canonical", [
    ("fadeIn", "fadein"), ("pop", "scalepop"), ("shakeX", "shakeX"), ("shakeX@1.0.0", "shakeX"),
    ("typewriter@1.0.0", "typewriter"), ("fadeOut", "fadeOut"), ("slideInLeft", "slideInLeft"),
    ("fadeIn@1.0.0", "fadein"),
])
def test_older_plugin_names_resolve_and_render_through_normalize(name, canonical):
    assert resolve_plugin_name(name) == canonical
    sc = normalize(v20({"id": "x", "eType": "text", "text": "hi", "displayTime": [0, 1],
                        "pluginChain": [{"name": name}]}))
    assert sc.scenario["cues"][0]["root"]["children"][0]["pluginChain"][0]["name"] == canonical


def test_the_eighteen_library_plugins_are_installed():
    eighteen = {"fadein", "slideup", "scalepop", "bobY", "pulse", "typewriter", "glow", "glitch", "magnetic",
                "spin", "rotation", "elastic", "fliptype", "flames", "cwi-color", "cwi-bouncing", "cwi-loud",
                "cwi-whisper"}
    assert eighteen <= set(installed_plugins())


def test_plugins_command_lists_every_installed_plugin_with_version_and_type(capsys):
    from ecg_ray.cli import main

    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plugins = installed_plugins()
    assert len(lines) == len(plugins)
    for line, info in zip(lines, plugins.values()):
        assert line.startswith(f"{info.name}@{info.version} ") and f" {info.type} " in line
        assert f"targets={','.join(info.targets)}" in line
    assert any(line.startswith("fadein@2.0.0") and "(also: fadeIn)" in line for line in lines)
    assert any(line.startswith("scalepop@2.0.0") and "(also: pop)" in line for line in lines)


def test_every_manifest_has_its_module_and_every_module_its_manifest():
    """installed_plugins() skips a manifest without a JS module: such a plugin would be listed
    nowhere and refused as not installed, so a missing file must fail here instead."""
    from ecg_ray.scenario.plugins import JS_DIR, MANIFEST_DIR

    manifests = {p.name.split("@", 1)[0] for p in MANIFEST_DIR.glob("*.json")}
    modules = {p.stem for p in JS_DIR.glob("*.js") if not p.stem.startswith("_")}
    assert manifests == modules == set(installed_plugins())


# -- fuzzed: v1.3 trees (with hostile edits) sent as v2.0 -----------------------------------------

def _as_v20(data: dict) -> dict:
    """A v1.3 scenario relabelled 2.0, as a half-converted export would send it: every node is
    then v1.3-shaped and goes through the repair."""
    data = copy.deepcopy(data)
    data["version"] = "2.0"
    if not isinstance(data.get("stage"), dict):
        data["stage"] = {"baseAspect": "16:9"}
    for cue in data.get("cues") if isinstance(data.get("cues"), list) else []:
        if isinstance(cue, dict) and isinstance(cue.get("hintTime"), dict):
            hint = cue.pop("hintTime")
            cue["domLifetime"] = [hint.get("start"), hint.get("end")]
    return data


def test_fuzzed_v13_nodes_in_v20_are_repaired_or_refused_with_a_path():
    """The fuzz property of test_fuzz_scenarios (a v2.0 scenario the page loads, or
    invalid_scenario naming a path into the input; no other exception, the input untouched)."""
    from hypothesis import given
    from hypothesis import strategies as st

    from .test_fuzz_scenarios import check_normalize, fuzz_settings, near_valid, v13_scenarios

    seen = {"repaired": 0, "refused": 0}

    @fuzz_settings(300)
    @given(st.one_of(v13_scenarios(), near_valid().filter(lambda d: d.get("version") == "1.3" and "tracks" in d))
           .map(_as_v20))
    def run(data):
        sc = check_normalize(data)
        if sc is None:
            seen["refused"] += 1
        elif any(REPAIRED in w for w in sc.warnings):
            seen["repaired"] += 1

    run()
    assert seen["repaired"] > 50 and seen["refused"] > 10, seen


def test_a_plugin_version_other_than_the_installed_one_is_drawn_with_a_warning():
    """``name@version`` is drawn by the installed plugin; when the versions differ the job says so."""
    have = installed_plugins()["fadein"].version

    def chain(name: str) -> dict:
        return {"version": "2.0", "tracks": [{"id": "t", "type": "free", "layer": 1}], "cues": [
            {"id": "c", "track": "t", "root": {"id": "r", "eType": "text", "text": "가", "displayTime": [0, 1],
                                                "pluginChain": [{"name": name}]}}]}

    sc = normalize(chain("fadein@0.9.0"))
    assert sc.scenario["cues"][0]["root"]["pluginChain"][0]["name"] == "fadein"
    assert sc.warnings == [f"cues[0].root.pluginChain[0].name: 'fadein@0.9.0' asks for version 0.9.0; "
                           f"drawn with the installed fadein {have}"]
    assert normalize(chain(f"fadein@{have}")).warnings == []
    assert normalize(chain("fadein")).warnings == []
