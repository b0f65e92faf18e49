"""The simple cue shape's default captions on 16:9, 9:16, 4:5 and 1:1 frames: sized by the
frame's shorter side, at most two or three lines (Korean broken between words), in the lower
third and above the band short-form players cover. Checked on the real caption page's pixels."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_ray.rendering.still import render_still
from ecg_ray.scenario.layout import caption_layout
from ecg_ray.scenario.normalize import normalize

LATIN = "The quick brown fox jumps over the lazy dog while seventy characters go"  # 70 characters
KOREAN = "오늘은 날씨가 정말 좋아서 친구들과 함께 한강 공원에 가서 자전거를 타고 맛있는 치킨을 먹었습니다 정말 즐거웠어요"

# name: (width, height, lowest allowed bottom of the text as a fraction of the height, most lines)
SHAPES = {
    "16:9": (640, 360, 0.90, 2),
    "9:16": (360, 640, 0.78, 3),
    "4:5": (432, 540, 0.86, 3),
    "1:1": (540, 540, 0.86, 3),
}


def _lines_of(text: str, aspect: float) -> list[str]:
    sc = normalize({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": text}]}, aspect).scenario
    return [n["text"] for n in sc["cues"][0]["root"]["children"]]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_korean_is_broken_between_words(shape):
    w, h, _, most = SHAPES[shape]
    lines = _lines_of(KOREAN, w / h)
    assert 2 <= len(lines) <= most, lines
    assert " ".join(lines) == KOREAN  # every break at a space: no word cut
    assert all(line == line.strip() for line in lines)


def _text_rows(img: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges of the caption's lines: rows with white fill (the outline and shadow are dark)."""
    white = (img[..., 3] > 200) & (img[..., :3].min(axis=2) > 200)
    rows = np.flatnonzero(white.sum(axis=1) >= 2)
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and r <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], int(r))
        else:
            runs.append((int(r), int(r)))
    return runs


@pytest.mark.parametrize("text", [LATIN, KOREAN], ids=["latin", "korean"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_default_caption_box_per_aspect(shape, text, tmp_path):
    w, h, bottom, most = SHAPES[shape]
    img, _ = render_still({"version": "1.3", "cues": [{"start": 0, "end": 2, "text": text}]}, 1.0,
                          str(tmp_path / f"{shape}.png"), width=w, height=h)
    assert img.shape == (h, w, 4)
    lines = _text_rows(img)
    assert 1 <= len(lines) <= most, (shape, lines)
    ys, xs = np.nonzero(img[..., 3] > 0)
    box_w = xs.max() - xs.min() + 1
    # Lines are at most 80% of the width (plus the shadow's few pixels), centred.
    assert box_w <= 0.85 * w, (shape, box_w)
    assert abs((xs.max() + xs.min()) / 2 - w / 2) < 0.03 * w
    # The text's last row is above the band players cover and not far above it; the whole
    # caption is in the lower half (the lower third, but for three lines in landscape).
    last = lines[-1][1]
    assert (bottom - 0.08) * h < last <= bottom * h, (shape, last / h)
    assert ys.min() > 0.5 * h, (shape, ys.min() / h)
    # Sized by the shorter side: the line pitch is 1.25 font sizes, the font 6% of the shorter
    # side (set down to 60% of that where the text needs it to fit its lines).
    if len(lines) > 1:
        pitch = (lines[-1][0] - lines[0][0]) / (len(lines) - 1)
        font = pitch / 1.25
        assert 0.6 * 0.06 * min(w, h) * 0.9 < font < 0.06 * min(w, h) * 1.1, (shape, font)


def test_layouts_by_shape():
    land, port, four_five, square = (caption_layout(a) for a in (16 / 9, 9 / 16, 4 / 5, 1.0))
    # 16:9 is what it always was: 6% of the height, bottom at 90%.
    assert (land.font_rel, land.bottom, land.line_width_rel) == (0.06, 0.90, 0.80)
    # The same text size relative to the shorter side everywhere.
    for lay, aspect in ((port, 9 / 16), (four_five, 4 / 5), (square, 1.0)):
        assert abs(lay.font_rel * min(1.0, aspect) ** -1 - 0.06) < 1e-9
    assert port.bottom < four_five.bottom <= square.bottom < land.bottom
