"""A job's captions as WebVTT (``options.webvtt``): the text of every cue with its times, for
players' own subtitle tracks, accessibility and search.

One WebVTT cue per caption group and display window: the text nodes of a scenario cue that show
over the same time are one cue, their lines ordered as a reader meets them on screen (top to
bottom, then left to right). Cues are ordered by start time. Text is written as text: ``&``,
``<`` and ``>`` are escaped, so a caption can neither open a WebVTT tag nor end its cue
(``-->``), and blank lines (which would end a cue) are dropped.
"""

from __future__ import annotations

import math
from typing import Any

from ecg_ray.scenario.model import END_EPSILON, Scenario, resolve_define


def _stamp(t: float) -> str:
    ms = max(0, int(round(t * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape(text: str) -> list[str]:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else default


def _span(sc: dict[str, Any], node: dict[str, Any], inherited: tuple[float, float] | None) -> tuple[float, float] | None:
    own = resolve_define(sc, node.get("displayTime"))
    if isinstance(own, list) and len(own) == 2 and all(isinstance(v, (int, float)) for v in own):
        # normalize() drew a node up to end - END_EPSILON; its cue ends at the end it was given
        return float(own[0]), float(own[1]) + (END_EPSILON if own[1] > own[0] else 0.0)
    return inherited


def _texts(sc: dict[str, Any], node: Any, inherited: tuple[float, float] | None,
           out: list[tuple[tuple[float, float], float, float, str]]) -> None:
    if not isinstance(node, dict):
        return
    span = _span(sc, node, inherited)
    if node.get("eType") == "text" and span is not None:
        text = resolve_define(sc, node.get("text"))
        layout = resolve_define(sc, node.get("layout")) or {}
        pos = resolve_define(sc, layout.get("position")) if isinstance(layout, dict) else None
        x = _number(pos.get("x"), 0.5) if isinstance(pos, dict) else 0.5
        y = _number(pos.get("y"), 0.5) if isinstance(pos, dict) else 0.5
        if isinstance(text, str) and text.strip():
            out.append((span, y, x, text))
    for child in node.get("children") or []:
        _texts(sc, child, span, out)


def to_webvtt(scenario: Scenario) -> str:
    """The scenario's captions as a WebVTT file's text."""
    sc = scenario.scenario
    cues: list[tuple[float, float, float, list[str]]] = []
    for cue in sc.get("cues") or []:
        if not isinstance(cue, dict):
            continue
        cue_time = resolve_define(sc, cue.get("displayTime"))
        inherited = None
        if isinstance(cue_time, list) and len(cue_time) == 2 and all(isinstance(v, (int, float)) for v in cue_time):
            inherited = (float(cue_time[0]), float(cue_time[1]))
        found: list[tuple[tuple[float, float], float, float, str]] = []
        _texts(sc, cue.get("root"), inherited, found)
        by_span: dict[tuple[float, float], list[tuple[float, float, str]]] = {}
        for span, y, x, text in found:
            by_span.setdefault(span, []).append((y, x, text))
        for (start, end), lines in by_span.items():
            if end <= start:
                continue
            lines.sort(key=lambda v: (v[0], v[1]))
            shown = [line for _, _, t in lines for line in _escape(t)]
            if shown:
                cues.append((start, end, lines[0][0], shown))
    cues.sort(key=lambda c: (c[0], c[2], c[1]))
    out = ["WEBVTT", ""]
    for start, end, _, shown in cues:
        out += [f"{_stamp(start)} --> {_stamp(end)}", *shown, ""]
    return "\n".join(out)
