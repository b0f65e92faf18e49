"""MotionText v1.3 -> v2.0 scenario migration.

The caption page runs motiontext-renderer 1.5.0, which loads v2.0 only and does not ship
its own v1.3 migrator, so this module rewrites v1.3 scenarios (with tracks) into v2.0.
The aim is the same drawing, not the same JSON: where v1.3 and v2.0 differ in meaning
(not only in field names), the value is converted so that 1.5.0 draws what a v1.3
renderer drew, and where that cannot be done exactly a warning names the JSON path.

Mapping (v1.3 -> v2.0):

* ``e_type`` / ``type`` -> ``eType``; text ``content`` -> ``text``; video ``mute`` -> ``muted``.
* ``absStart``/``absEnd`` -> ``displayTime: [start, end]``.
* cue ``hintTime`` (``{start, end}`` or a bare start number) -> ``domLifetime``, widened to
  cover every ``displayTime`` in the cue: in v1.3 it was only a pre-roll hint and the
  nodes' own times won, while in v2.0 a node outside ``domLifetime`` is unmounted.
  Nodes with no time of their own (and none above them) take ``hintTime`` as their
  ``displayTime``, as v1.3 did ("absStart/absEnd > hintTime").
* Plugin windows: v1.3 runs a plugin over ``[absStart + relStart|D*relStartPct,
  absEnd + relEnd|D*relEndPct]`` CLAMPED to ``[absStart, absEnd]``; 1.5.0 runs it over
  ``[start + timeOffset[0], end + timeOffset[1]]`` with no clamp (and defaults to
  ``["0%", "100%"]``, which is twice the node).  So every migrated spec gets an explicit
  ``timeOffset`` equal to the clamped v1.3 window: percentages stay percentages of the
  node, seconds stay seconds, and any end offset past the node's end becomes ``"0%"``.
* Plugin names: ``waveY`` (a v1.3 built-in that no longer exists) -> ``bobY`` with
  ``cycles = frequency`` and the amplitude negated (waveY moved down first, bobY up);
  ``cwi@1.0.0`` with ``params.kind = K`` -> ``cwi-K`` (the v2.0 split of that plugin) with
  its word window ``params.t0/t1`` (seconds from the node start) as ``timeOffset``.
  Other names are kept; ``normalize()`` resolves aliases and versions afterwards.
* ``plugin`` (a single spec) is put in front of ``pluginChain``.
* Layout: ``position``/``translate``/``padding`` ``[x, y]`` -> ``{x, y}``; ``size [w, h]`` ->
  ``{width, height}``; ``transform.scale [sx, sy]`` or a number -> ``{x, y}``;
  ``transform.rotate`` number -> ``{deg}``; ``transform.anchor [ax, ay]`` (a pivot, which
  1.5.0 does not read) -> ``transformOrigin``.
* Styles: ``textAlign`` -> ``align`` (1.5.0 reads only ``align``); box fields in a track's
  ``defaultStyle`` -> ``defaultBoxStyle``.
* A group without times that has a layout, style or effect gets ``displayTime`` = the span
  of its children: v1.3 kept a cue's group mounted, while 1.5.0 never mounts a node without
  a finite ``displayTime`` (its layout and box would not be drawn). A text/image/video with
  no time anywhere (no abs times, none above, no ``hintTime``) was shown the whole time in
  v1.3 and gets ``[0, ALWAYS_END]``.
* A positioned node on a ``subtitle`` track without an ``anchor`` gets ``"bc"``: v1.3
  anchored subtitle-track nodes at their bottom centre by default, 1.5.0 at the centre.
* Nodes without an id get one (v2.0 requires unique ids on every cue and node).
* ``definitions`` -> ``define``; ``wordStream``/``bindings`` have no v2.0 form (warned).
* Anything else is copied unchanged (v2.0 ignores fields it does not know).

``V13NodeRepair`` applies the same node conversion to v1.3-shaped nodes found inside a v2.0
scenario (a half-converted export); ``scenario.normalize()`` uses it and warns per node.
"""

from __future__ import annotations

import copy
from typing import Any

from ecg_ray.errors import RenderError, invalid_scenario, scenario_number
from ecg_ray.scenario.model import show

# Fields 1.5.0 reads from a style (text style + group box style).
TEXT_STYLE_FIELDS = {
    "fontFamily", "fontWeight", "fontSizeRel", "fontSize", "lineHeight", "color",
    "textShadow", "stroke", "align", "whiteSpace",
    # Not read by 1.5.0; the page draws them (capture/web/bootstrap.js, patchTextStyles): the editor sets them.
    "fontStyle", "textDecoration",
}
BOX_STYLE_FIELDS = {"backgroundColor", "boxBg", "border", "padding", "borderRadius", "opacity"}
ELEMENT_TYPES = ("group", "text", "image", "video")
# "The whole time" for a v1.3 node without any time (1.5.0 needs a finite displayTime).
ALWAYS_END = 1e9
COMPOSE_MODES = ("add", "multiply", "replace")


_fail = invalid_scenario
_num = scenario_number


def _pct(fraction: float) -> str:
    """0.35 -> "35%" (no float noise such as "35.00000000000001%", no exponent)."""
    text = f"{fraction * 100:.6f}".rstrip("0").rstrip(".")
    return ("0" if text in ("", "-0") else text) + "%"


def _pair(value: Any, path: str, keys: tuple[str, str], required: bool = False) -> dict:
    """``[a, b]`` -> ``{keys[0]: a, keys[1]: b}``; an object is checked and copied."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise _fail(path, f"must be [{keys[0]}, {keys[1]}]")
        return {keys[0]: _num(value[0], f"{path}[0]"), keys[1]: _num(value[1], f"{path}[1]")}
    if isinstance(value, dict):
        for k in keys:
            if k in value:
                _num(value[k], f"{path}.{k}")
            elif required:
                raise _fail(path, f"missing {k!r}")
        return copy.deepcopy(value)
    raise _fail(path, f"must be [{keys[0]}, {keys[1]}] or an object")


class _Migrator:
    def __init__(self) -> None:
        # Warnings grouped by kind so a 500-word scenario does not give 500 identical lines.
        self._warnings: dict[str, tuple[str, str, int]] = {}
        self._ids: set[str] = set()
        self._tracks: list[dict] = []
        # v1.3 path of every migrated pluginChain entry, by id() of the migrated node: with a
        # `plugin` put in front, pluginChain[k] of the output is pluginChain[k-1] of the input,
        # and normalize() must name the input's place in its errors.
        self.chain_paths: dict[int, list[str]] = {}

    # -- warnings -------------------------------------------------------------------------

    def warn(self, kind: str, path: str, message: str) -> None:
        if kind in self._warnings:
            first, msg, n = self._warnings[kind]
            self._warnings[kind] = (first, msg, n + 1)
        else:
            self._warnings[kind] = (path, message, 1)

    def warnings(self) -> list[str]:
        out = []
        for path, msg, n in self._warnings.values():
            more = f" (and {n - 1} more like it)" if n > 1 else ""
            out.append(f"{path}: {msg}{more}")
        return out

    # -- ids --------------------------------------------------------------------------------

    def _collect_ids(self, cues: list) -> None:
        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("id"), str) and node["id"]:
                    self._ids.add(node["id"])
                if isinstance(node.get("children"), list):
                    for child in node["children"]:
                        walk(child)

        for cue in cues:
            if isinstance(cue, dict):
                if isinstance(cue.get("id"), str) and cue["id"]:
                    self._ids.add(cue["id"])
                walk(cue.get("root"))

    def _fresh_id(self, base: str) -> str:
        cand, n = base, 1
        while cand in self._ids:
            n += 1
            cand = f"{base}-{n}"
        self._ids.add(cand)
        return cand

    def _claim_id(self, wanted: Any, fallback: str, seen: set[str]) -> str:
        # Existing ids are kept (first use wins); missing or repeated ones get a new one.
        if isinstance(wanted, str) and wanted and wanted not in seen:
            seen.add(wanted)
            return wanted
        new = self._fresh_id(fallback)
        seen.add(new)
        return new

    # -- top level --------------------------------------------------------------------------

    def run(self, data: Any) -> dict:
        if not isinstance(data, dict):
            raise RenderError("invalid_scenario", "scenario must be a JSON object")
        version = str(data.get("version", ""))
        if not version.startswith("1."):
            raise _fail("version", f"expected a MotionText 1.x scenario, got {show(data.get('version'))}")
        for key in ("tracks", "cues"):
            if not isinstance(data.get(key), list):
                raise _fail(key, "missing or not a list")

        out: dict[str, Any] = {"version": "2.0"}
        out["timebase"] = self._timebase(data.get("timebase"))
        stage = data.get("stage")
        if stage is not None:
            if not isinstance(stage, dict):
                raise _fail("stage", "must be an object")
            out["stage"] = copy.deepcopy(stage)
        if "behavior" in data:
            out["behavior"] = copy.deepcopy(data["behavior"])

        define = data.get("definitions")
        out["define"] = {}
        if define:
            if not isinstance(define, dict):
                raise _fail("definitions", "must be an object")
            out["define"] = copy.deepcopy(define)
            self.warn("definitions", "definitions",
                      "copied to v2.0 'define'; v1.3 references to them are not rewritten into "
                      "'define.<key>' strings, so check the values that used them")
        for key in ("wordStream", "bindings"):
            if data.get(key):
                self.warn(key, key, "has no v2.0 form and is not migrated: words bound from it are "
                          "not drawn; expand them into text nodes first")

        tracks, track_ids = [], set()
        for i, tr in enumerate(data["tracks"]):
            mt = self._track(tr, f"tracks[{i}]")
            if mt["id"] in track_ids:
                raise _fail(f"tracks[{i}].id", f"duplicate track id {show(mt['id'])}")
            track_ids.add(mt["id"])
            tracks.append(mt)
        out["tracks"] = self._tracks = tracks

        self._collect_ids(data["cues"])
        seen: set[str] = set()
        out["cues"] = [self._cue(cue, f"cues[{i}]", i, track_ids, seen) for i, cue in enumerate(data["cues"])]

        known = {"version", "timebase", "stage", "behavior", "definitions", "wordStream", "bindings",
                 "tracks", "cues"}
        for key, value in data.items():
            if key not in known and key not in out:
                out[key] = copy.deepcopy(value)  # unknown to v1.3: kept as given
        return out

    def _timebase(self, tb: Any) -> dict:
        if tb is None:
            return {"unit": "seconds"}
        if not isinstance(tb, dict):
            raise _fail("timebase", "must be an object")
        unit = tb.get("unit", "seconds")
        if unit != "seconds":
            # v2.0 knows seconds only; v1.3 'tc' never said how its times were written.
            raise _fail("timebase.unit", f"{show(unit)} is not supported; write the times in seconds")
        out = copy.deepcopy(tb)
        out["unit"] = "seconds"
        if "fps" in out:
            fps = _num(out["fps"], "timebase.fps")
            if fps <= 0:
                raise _fail("timebase.fps", "must be positive")
        return out

    def _track(self, tr: Any, path: str) -> dict:
        if not isinstance(tr, dict) or not isinstance(tr.get("id"), str) or not tr["id"]:
            raise _fail(path, "must be an object with a string id")
        out = copy.deepcopy(tr)
        if isinstance(tr.get("defaultStyle"), dict):
            style = self._style(tr["defaultStyle"], f"{path}.defaultStyle")
            box = {k: style.pop(k) for k in list(style) if k in BOX_STYLE_FIELDS}
            out["defaultStyle"] = style
            if box:
                # 1.5.0 draws caption boxes from defaultBoxStyle only; v1.3 put them here.
                out["defaultBoxStyle"] = {**box, **(tr.get("defaultBoxStyle") or {})}
                self.warn("track-box", f"{path}.defaultStyle",
                          f"box fields {sorted(box)} moved to defaultBoxStyle, which 1.5.0 draws on "
                          "group boxes (v1.3 did not say what they were drawn on)")
        mode = tr.get("scaleMode")
        if mode not in (None, "scaleWithVideo"):
            self.warn("scaleMode", f"{path}.scaleMode",
                      f"{show(mode)} has no v2.0 form; drawn as scaleWithVideo (sizes follow the video)")
        return out

    # -- cues and nodes ---------------------------------------------------------------------

    def _cue(self, cue: Any, path: str, index: int, track_ids: set[str], seen: set[str]) -> dict:
        if not isinstance(cue, dict):
            raise _fail(path, "must be an object")
        # (a list or object as track is no id: `in` on the id set would raise TypeError)
        if not isinstance(cue.get("track"), str) or cue["track"] not in track_ids:
            raise _fail(f"{path}.track", f"unknown track {show(cue.get('track'))}")
        if not isinstance(cue.get("root"), dict):
            raise _fail(f"{path}.root", "missing or not an object")
        out: dict[str, Any] = {}
        cue_id = self._claim_id(cue.get("id"), f"cue-{index}", seen)
        hint = self._hint(cue.get("hintTime"), f"{path}.hintTime")
        for key, value in cue.items():
            if key not in ("id", "hintTime", "root"):
                out[key] = copy.deepcopy(value)
        out["id"] = cue_id
        # Without times of its own, a node runs on the cue's hintTime (v1.3 time rule).
        track_type = next(t.get("type") for t in self._tracks if t["id"] == cue["track"])
        ctx = {
            "hint": hint if hint[0] is not None and hint[1] is not None else None,
            "subtitle": track_type == "subtitle",
        }
        times: list[tuple[float, float]] = []
        out["root"], _ = self._node(cue["root"], f"{path}.root", f"{cue_id}.root", None, ctx, times, seen)
        if cue.get("hintTime") is not None and "domLifetime" not in cue:
            lo = min([t[0] for t in times] + ([hint[0]] if hint[0] is not None else []), default=None)
            hi = max([t[1] for t in times] + ([hint[1]] if hint[1] is not None else []), default=None)
            if lo is not None and hi is not None and hi >= lo:
                out["domLifetime"] = [lo, hi]
            else:
                self.warn("hint-open", f"{path}.hintTime",
                          "gives no end and no node has times: no domLifetime was set")
        return out

    def _hint(self, hint: Any, path: str) -> tuple[float | None, float | None]:
        if hint is None:
            return None, None
        if isinstance(hint, (int, float)) and not isinstance(hint, bool):
            return _num(hint, path), None  # a bare number in the samples: the start
        if isinstance(hint, dict):
            s = _num(hint["start"], f"{path}.start") if hint.get("start") is not None else None
            e = _num(hint["end"], f"{path}.end") if hint.get("end") is not None else None
            if s is not None and e is not None and e < s:
                raise _fail(path, f"end ({e}) is before start ({s})")
            return s, e
        raise _fail(path, "must be {start, end} or a number")

    def _etype(self, node: dict, path: str) -> str:
        given = {k: node[k] for k in ("eType", "e_type", "type") if k in node}
        values = set(map(str, given.values()))
        if not given:
            raise _fail(path, "missing element type (e_type)")
        if len(values) > 1:
            raise _fail(path, f"conflicting element types {show(given)}")
        etype = next(iter(given.values()))
        if etype not in ELEMENT_TYPES:
            raise _fail(path + "." + next(iter(given)), f"unknown element type {show(etype)}")
        return etype

    def _node(self, node: Any, path: str, id_base: str, parent_time: tuple[float, float] | None,
              ctx: dict, times: list, seen: set[str]) -> tuple[dict, tuple[float, float] | None]:
        """Migrate one node (and its subtree): (v2.0 node, the time it is shown or None)."""
        if not isinstance(node, dict):
            raise _fail(path, "must be an object")
        etype = self._etype(node, path)
        out: dict[str, Any] = {}
        consumed = {"eType", "e_type", "type", "id", "content", "text", "absStart", "absEnd",
                    "layout", "style", "plugin", "pluginChain", "children", "mute"}
        for key, value in node.items():
            if key not in consumed:
                out[key] = copy.deepcopy(value)
        out["id"] = self._claim_id(node.get("id"), id_base, seen)
        out["eType"] = etype

        if etype == "text":
            text, content = node.get("text"), node.get("content")
            if text is None and content is None:
                raise _fail(path, "text node has no text")
            if text is not None and content is not None and text != content:
                self.warn(f"content:{path}", f"{path}.content", "differs from 'text'; 'text' is drawn")
            value = text if text is not None else content
            if not isinstance(value, str):
                raise _fail(f"{path}.{'text' if text is not None else 'content'}", "must be a string")
            out["text"] = value
        elif "text" in node or "content" in node:
            out["text"] = copy.deepcopy(node.get("text", node.get("content")))
        if etype in ("image", "video") and not isinstance(node.get("src"), str):
            raise _fail(f"{path}.src", "must be a string")
        if "mute" in node:
            if etype == "video" and "muted" not in node:
                out["muted"] = bool(node["mute"])
            elif etype != "video":
                out["mute"] = copy.deepcopy(node["mute"])

        # Times: absStart/absEnd -> displayTime.
        own = self._abs(node, path)
        if own is not None:
            out["displayTime"] = [own[0], own[1]]
        elif isinstance(node.get("displayTime"), list) and len(node["displayTime"]) == 2:
            dt = node["displayTime"]  # already v2.0 (a mixed document)
            own = (_num(dt[0], f"{path}.displayTime[0]"), _num(dt[1], f"{path}.displayTime[1]"))
        elif isinstance(node.get("displayTime"), str):
            pass  # a v2.0 define reference (a mixed document): copied as given, checked by normalize()
        elif parent_time is None and etype != "group":
            # No time here or above: v1.3 used the cue's hintTime, and without one showed the
            # node the whole time; 1.5.0 never shows a node without a finite time.
            if ctx["hint"] is not None:
                own = ctx["hint"]
            else:
                own = (0.0, ALWAYS_END)
                self.warn("always", path, "has no absStart/absEnd and its cue no hintTime: v1.3 showed it "
                          f"the whole time; migrated as displayTime [0, {ALWAYS_END:g}]")
            out["displayTime"] = [own[0], own[1]]
        if own is not None:
            times.append(own)

        if "layout" in node:
            out["layout"] = self._layout(node["layout"], f"{path}.layout", ctx["subtitle"])
        if "style" in node:
            out["style"] = self._style(node["style"], f"{path}.style")

        shown = own or parent_time
        if "children" in node:
            children = node["children"]
            if not isinstance(children, list):
                raise _fail(f"{path}.children", "must be a list")
            if etype != "group" and children:
                self.warn("leaf-children", f"{path}.children",
                          f"a {etype} node's children are not drawn in v2.0 (only groups have children)")
            migrated = [
                self._node(child, f"{path}.children[{j}]", f"{out['id']}.{j}", shown, ctx, times, seen)
                for j, child in enumerate(children)
            ]
            out["children"] = [m[0] for m in migrated]
            spans = [m[1] for m in migrated if m[1] is not None]
            draws = any(node.get(k) for k in ("layout", "style", "boxStyle", "effectScope", "plugin", "pluginChain"))
            if etype == "group" and shown is None and draws:
                # v1.3 kept a cue's group mounted; 1.5.0 mounts a group only inside a finite
                # displayTime (without one its layout and box are never drawn), so a group with
                # a layout, style or effect gets the span of its children. A bare group is left
                # alone: mounted or not it draws nothing and its children land in the same place.
                if spans:
                    shown = (min(s for s, _ in spans), max(e for _, e in spans))
                elif ctx["hint"] is not None:
                    shown = ctx["hint"]
                if shown is not None:
                    out["displayTime"] = [shown[0], shown[1]]

        chain_in: list[tuple[Any, str]] = []
        if node.get("plugin") is not None:
            chain_in.append((node["plugin"], f"{path}.plugin"))
        if node.get("pluginChain") is not None:
            if not isinstance(node["pluginChain"], list):
                raise _fail(f"{path}.pluginChain", "must be a list")
            chain_in += [(spec, f"{path}.pluginChain[{k}]") for k, spec in enumerate(node["pluginChain"])]
            if node.get("plugin") is not None:
                self.warn("plugin+chain", f"{path}.plugin",
                          "both 'plugin' and 'pluginChain' given: 'plugin' is run first")
        if chain_in:
            out["pluginChain"] = [self._plugin(spec, p, shown) for spec, p in chain_in]
            self.chain_paths[id(out)] = [p for _, p in chain_in]
        return out, shown

    def _abs(self, node: dict, path: str) -> tuple[float, float] | None:
        has_s, has_e = node.get("absStart") is not None, node.get("absEnd") is not None
        if not has_s and not has_e:
            return None
        if has_s != has_e:
            raise _fail(path, "absStart and absEnd must be given together")
        s, e = _num(node["absStart"], f"{path}.absStart"), _num(node["absEnd"], f"{path}.absEnd")
        if e < s:
            raise _fail(path, f"absEnd ({e}) is before absStart ({s})")
        return s, e

    # -- layout and style -------------------------------------------------------------------

    def _layout(self, layout: Any, path: str, subtitle: bool) -> Any:
        if isinstance(layout, str):
            return layout  # a v2.0 define reference in a mixed document
        if not isinstance(layout, dict):
            raise _fail(path, "must be an object")
        out = copy.deepcopy(layout)
        if "position" in layout:
            out["position"] = _pair(layout["position"], f"{path}.position", ("x", "y"), required=True)
            if "anchor" not in layout and subtitle:
                # v1.3 placed subtitle-track nodes by their bottom centre unless told
                # otherwise; 1.5.0 defaults every track to the centre ("cc").
                out["anchor"] = "bc"
        if "padding" in layout and isinstance(layout["padding"], (list, tuple)):
            out["padding"] = _pair(layout["padding"], f"{path}.padding", ("x", "y"))
        if "size" in layout and isinstance(layout["size"], (list, tuple)):
            size = layout["size"]
            if len(size) != 2:
                raise _fail(f"{path}.size", "must be [width, height]")
            out["size"] = {"width": size[0], "height": size[1]}
        tr = layout.get("transform")
        if tr is not None:
            if not isinstance(tr, dict):
                raise _fail(f"{path}.transform", "must be an object")
            tr_out = out["transform"]
            tp = f"{path}.transform"
            if "scale" in tr:
                sc = tr["scale"]
                if isinstance(sc, (int, float)) and not isinstance(sc, bool):
                    tr_out["scale"] = {"x": _num(sc, f"{tp}.scale"), "y": sc}
                else:
                    tr_out["scale"] = _pair(sc, f"{tp}.scale", ("x", "y"))
            if "translate" in tr:
                tr_out["translate"] = _pair(tr["translate"], f"{tp}.translate", ("x", "y"))
            if "rotate" in tr and isinstance(tr["rotate"], (int, float)) and not isinstance(tr["rotate"], bool):
                tr_out["rotate"] = {"deg": _num(tr["rotate"], f"{tp}.rotate")}
            if "anchor" in tr:
                # Not a v1.3 spec field and not read by 1.5.0: taken as the transform pivot.
                pivot = _pair(tr["anchor"], f"{tp}.anchor", ("x", "y"), required=True)
                ax, ay = pivot["x"], pivot["y"]
                del tr_out["anchor"]
                if "transformOrigin" not in layout:
                    out["transformOrigin"] = f"{_pct(ax)[:-1]}% {_pct(ay)[:-1]}%"
                if (ax, ay) != (0.5, 0.5):
                    self.warn(f"tanchor:{path}", f"{tp}.anchor",
                              f"[{ax}, {ay}] taken as the scale/rotate pivot (transformOrigin)")
        return out

    def _style(self, style: Any, path: str) -> Any:
        if isinstance(style, str):
            return style  # a v2.0 define reference in a mixed document
        if not isinstance(style, dict):
            raise _fail(path, "must be an object")
        out = copy.deepcopy(style)
        if "textAlign" in out:
            # v1.3 samples write CSS's textAlign; the MotionText field (read by 1.5.0) is align.
            value = out.pop("textAlign")
            out.setdefault("align", value)
        if "plugin" in out:
            self.warn("style-plugin", f"{path}.plugin",
                      f"{show(out['plugin'])} (with style.options) is not a MotionText plugin reference "
                      "and is not drawn; kept as is. Put it in pluginChain to animate the node")
        for key in ("fontStyle", "textDecoration"):
            if key in out and not isinstance(out[key], str):
                self.warn(f"style-type:{key}", f"{path}.{key}",
                          f"{show(out[key])} is not a CSS {key} value (a string such as "
                          f"{'italic' if key == 'fontStyle' else 'underline'}); not drawn")
        unknown = sorted(k for k in out if k not in TEXT_STYLE_FIELDS | BOX_STYLE_FIELDS | {"plugin", "options"})
        if unknown:
            self.warn(f"style-unknown:{','.join(unknown)}", path,
                      f"{show(unknown, 200)} are not MotionText style fields; the renderer ignores them")
        return out

    # -- plugins ----------------------------------------------------------------------------

    def _plugin(self, spec: Any, path: str, span: tuple[float, float] | None) -> dict:
        if isinstance(spec, str) and spec.startswith("define."):
            return spec  # type: ignore[return-value]  # v2.0 define reference, kept
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise _fail(path, "must be an object with a plugin name")
        if spec.get("compose") is not None and spec["compose"] not in COMPOSE_MODES:
            raise _fail(f"{path}.compose", f"must be one of {', '.join(COMPOSE_MODES)}")
        params = spec.get("params")
        if params is not None and not isinstance(params, dict):
            raise _fail(f"{path}.params", "must be an object")
        out = {k: copy.deepcopy(v) for k, v in spec.items()
               if k not in ("relStart", "relEnd", "relStartPct", "relEndPct", "t0", "t1")}
        params = out.get("params") or {}
        base = spec["name"].split("@", 1)[0]
        word_window: tuple[Any, Any] | None = None
        word_path = path

        if base == "waveY":
            # v1.3 built-in: ty = amp*sin(2*pi*frequency*p). bobY: ty = -amp*sin(2*pi*cycles*p).
            amp = params.get("amplitudePx", 8)
            freq = params.get("frequency", 2)
            params = {k: v for k, v in params.items() if k not in ("amplitudePx", "frequency")}
            params["amplitudePx"] = -_num(amp, f"{path}.params.amplitudePx")
            params["cycles"] = _num(freq, f"{path}.params.frequency")
            out["name"] = "bobY"
            out["params"] = params
        elif base == "cwi":
            kind = params.get("kind")
            if not isinstance(kind, str) or not kind:
                raise _fail(f"{path}.params.kind", "cwi plugin needs a kind (loud, color, whisper, bouncing)")
            params = {k: v for k, v in params.items() if k != "kind"}
            out["name"] = f"cwi-{kind}"
            if "t0" in params or "t1" in params:
                word_window = (params.pop("t0", None), params.pop("t1", None))
                word_path = f"{path}.params"
            out["params"] = params
            self.warn("cwi", path,
                      "cwi@1.0.0 split into cwi-<kind> plugins in v2.0: the word window params.t0/t1 "
                      "became timeOffset; the v2.0 plugins' own look may differ from 1.0.0")
        if "t0" in spec or "t1" in spec:
            word_window = (spec.get("t0"), spec.get("t1"))
            word_path = path
            self.warn("spec-t0t1", path, "t0/t1 taken as seconds from the node start (timeOffset)")

        if word_window is not None:
            out["timeOffset"] = self._word_offset(word_window, word_path, span)
        elif any(k in spec for k in ("relStart", "relEnd", "relStartPct", "relEndPct")) or "timeOffset" not in spec:
            out["timeOffset"] = self._rel_offset(spec, path, span)
        return out

    def _word_offset(self, window: tuple[Any, Any], path: str, span: tuple[float, float] | None) -> list:
        t0 = _num(window[0], f"{path}.t0") if window[0] is not None else 0.0
        if span is None:
            self.warn("no-span", path, "node has no times: plugin window left unclamped")
            t1 = _num(window[1], f"{path}.t1") if window[1] is not None else None
            return [t0, "0%" if t1 is None else t1]
        dur = span[1] - span[0]
        t1 = _num(window[1], f"{path}.t1") if window[1] is not None else dur
        if t1 < t0:
            raise _fail(path, f"t1 ({t1}) is before t0 ({t0})")
        t0c, t1c = min(max(t0, 0.0), dur), min(max(t1, 0.0), dur)
        if (t0c, t1c) != (t0, t1):
            self.warn("word-clamp", path, f"word window [{t0}, {t1}] s reaches outside the node; clamped")
        # First bound counts from the start, second from the END (1.5.0).
        return [round(t0c, 9), round(t1c - dur, 9)]

    def _rel_offset(self, spec: dict, path: str, span: tuple[float, float] | None) -> list:
        """v1.3 window -> v2.0 ``timeOffset`` (see the module docstring)."""
        for key in ("relStartPct", "relEndPct"):
            if spec.get(key) is not None:
                v = _num(spec[key], f"{path}.{key}")
                if not 0 <= v <= 1:
                    raise _fail(f"{path}.{key}", f"must be within 0..1 (a fraction of the node), got {v}")
        for key in ("relStart", "relEnd"):
            if spec.get(key) is not None:
                _num(spec[key], f"{path}.{key}")
        rs, re_, rsp, rep = (spec.get(k) for k in ("relStart", "relEnd", "relStartPct", "relEndPct"))
        for sec, pct, name in ((rs, rsp, "Start"), (re_, rep, "End")):
            if sec is not None and pct is not None:
                self.warn(f"both-{name}", path, f"rel{name} and rel{name}Pct both given: rel{name} is used (as in v1.3)")

        dur = (span[1] - span[0]) if span is not None else None
        # Start bound, seconds from the start of the node.
        if rs is not None:
            if dur is None:
                start: Any = max(rs, 0.0)
            else:
                start = round(min(max(rs, 0.0), dur), 9)
        elif rsp is not None:
            start = _pct(rsp)
        else:
            start = "0%"
        # End bound, seconds from the END of the node; v1.3 clamped it to the end.
        if re_ is not None:
            end: Any = round(min(re_, 0.0) if dur is None else min(max(re_, -dur), 0.0), 9)
        else:
            end = "0%"
            if rep is not None and 0 < rep < 1:
                self.warn("relEndPct", f"{path}.relEndPct",
                          f"{rep}: v1.3 counted it from the node's END (absEnd + {rep}*D) and clamped that "
                          "to absEnd, so the effect ran to the node's end; migrated so (timeOffset end "
                          f"'0%'). For a window over the first {_pct(rep)} of the node use "
                          f"'{_pct(rep - 1)}'")
        if dur is not None:
            # v1.3 refused a window that starts after it ends (before clamping).
            raw_s = rs if rs is not None else (rsp or 0.0) * dur
            raw_e = dur + (re_ if re_ is not None else (rep or 0.0) * dur)
            if raw_s > raw_e + 1e-9:
                raise _fail(path, f"plugin window is inverted (starts {raw_s:g}s after the node starts, "
                            f"ends {raw_e:g}s after it)")
        return [start, end]


def migrate_v13(data: dict) -> tuple[dict, list[str]]:
    """Migrate a MotionText v1.3 scenario (with tracks and cues) to v2.0.

    Returns ``(scenario_v2, warnings)``. Warnings name the JSON path (in the v1.3 input) of
    everything that could not be mapped exactly. Malformed input raises
    ``RenderError("invalid_scenario", "<json path>: <problem>")``. The result still goes
    through ``scenario.normalize()`` for plugin names and the v2.0 checks.
    """
    out, warnings, _ = migrate_v13_traced(data)
    return out, warnings


def migrate_v13_traced(data: dict) -> tuple[dict, list[str], dict[int, list[str]]]:
    """``migrate_v13`` plus the v1.3 path of each migrated pluginChain entry, by ``id()`` of
    the migrated node (valid while the returned scenario lives)."""
    m = _Migrator()
    out = m.run(data)
    return out, m.warnings(), m.chain_paths


def is_v13_node(node: Any) -> bool:
    """A node written the v1.3 way: ``type``/``e_type`` and no ``eType``, or a text node whose
    text is only in ``content``. motiontext-renderer 1.5.0 reads neither (no eType: not drawn,
    nor its children; ``content``: no text)."""
    if not isinstance(node, dict):
        return False
    if "eType" not in node:
        return "type" in node or "e_type" in node
    return node.get("eType") == "text" and "text" not in node and "content" in node


def v13_node_paths(node: Any, path: str) -> list[str]:
    """The JSON paths of the v1.3-shaped nodes in a subtree (``node`` included), in order."""
    out: list[str] = []
    stack = [(node, path)]
    while stack:
        n, p = stack.pop()
        if not isinstance(n, dict):
            continue
        if is_v13_node(n):
            out.append(p)
        children = n.get("children")
        if isinstance(children, list):
            stack.extend((c, f"{p}.children[{j}]") for j, c in reversed(list(enumerate(children))))
    return out


class V13NodeRepair:
    """Converts v1.3-shaped nodes met inside a v2.0 scenario (a half-converted export) with
    the migrator's own node conversion (``_Migrator._node``: element type, content -> text,
    absStart/absEnd, [x, y] layout pairs, subtitle anchor, plugin windows, missing ids), with
    errors and warnings naming the node's path in the v2.0 input.

    ``chain_paths`` maps ``id()`` of each converted node to the input path of its pluginChain
    entries (as ``migrate_v13_traced``)."""

    def __init__(self, sc: dict) -> None:
        self._m = _Migrator()
        cues = sc.get("cues")
        self._m._collect_ids(cues if isinstance(cues, list) else [])
        self._seen: set[str] = set()
        self.chain_paths = self._m.chain_paths

    def node(self, node: dict, path: str, parent_time: tuple[float, float] | None,
             hint: tuple[float, float] | None, subtitle: bool) -> dict:
        """The v2.0 form of ``node`` (and its subtree). ``parent_time``: the time it inherits;
        ``hint``: the cue's domLifetime (its v1.3 hintTime), for a node with no time at all;
        ``subtitle``: whether the cue's track is a subtitle track (v1.3 anchored those bc)."""
        ctx = {"hint": hint, "subtitle": subtitle}
        out, _ = self._m._node(node, path, path, parent_time, ctx, [], self._seen)
        return out

    def warnings(self) -> list[str]:
        """What the conversion itself could not map exactly (the migrator's grouped warnings)."""
        return self._m.warnings()
