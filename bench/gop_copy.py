"""How much copying untouched GOPs could save: for an input and a scenario, the share of the
source's frames that lie in GOPs (keyframe to keyframe) where no caption can show. Only those
could be stream-copied instead of re-encoded, so this share bounds the gain of that lever
(before the cost of matching the encoder's parameters to the source's, which copying needs).

    python bench/gop_copy.py INPUT.mp4 SCENARIO.json
    python bench/gop_copy.py --bench        # the benchmark's inputs and scenarios (common.py)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import av
from common import make_input, make_scenario

from ecg_ray import RenderOptions, probe
from ecg_ray.capture.overlay import covered_frames
from ecg_ray.config import load_settings
from ecg_ray.rendering.plan import output_format
from ecg_ray.scenario.normalize import normalize


def keyframes(path: str) -> list[int]:
    """Indices (in decode order of the first video stream) of the frames that start a GOP."""
    with av.open(path) as c:
        stream = c.streams.video[0]
        return [i for i, pkt in enumerate(p for p in c.demux(stream) if p.size) if pkt.is_keyframe]


def untouched_share(path: str, scenario: dict) -> dict:
    info = probe(path)
    out = output_format(info, RenderOptions(), load_settings())
    sc = normalize(scenario, out.width / out.height)
    cov = covered_frames(sc, out, 0, out.frame_count)
    keys = keyframes(path) + [out.frame_count]
    free = sum(b - a for a, b in zip(keys, keys[1:]) if not any(cov[a:b]))
    return {"frames": out.frame_count, "gops": len(keys) - 1, "covered_frames": sum(cov),
            "frames_in_untouched_gops": free, "untouched_share": round(free / max(1, out.frame_count), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input", nargs="?")
    ap.add_argument("scenario", nargs="?")
    ap.add_argument("--bench", action="store_true", help="the benchmark's 60 s input with 4, 12 and 20 cues a minute")
    a = ap.parse_args()
    if a.bench:
        src = Path(tempfile.gettempdir()) / "ecg-gop-input_720p25_60s.mp4"
        make_input(src, 60, 720, "25")
        for cues in (4, 12, 20):
            print(f"{cues} cues a minute:", untouched_share(str(src), make_scenario(60, cues)))
        # sparse captions: 6 cues of 3 s a minute, so 70% of the time shows none
        sparse = make_scenario(60, 6)
        for cue in sparse["cues"]:
            text = cue["root"]["children"][0]
            text["displayTime"] = [text["displayTime"][0], text["displayTime"][0] + 3.0]
        print("6 cues of 3 s a minute:", untouched_share(str(src), sparse))
    else:
        print(untouched_share(a.input, json.loads(Path(a.scenario).read_text())))


if __name__ == "__main__":
    main()
