"""Where the simple cue shape's default captions go and how large they are, by the frame's shape.

MotionText sizes text relative to the frame's height. Sized for 16:9, a 720x1280 portrait clip
got 77 px text in lines 0.8 x 720 px wide: a 70-character caption in nine lines over the middle
of the picture. So the size follows the frame's shorter side (the width in portrait), the text
is wrapped to at most a few lines (shrunk a little if it needs more), and it sits where
short-form players leave captions visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecg_ray.scenario.model import DEFAULT_STYLE, LINE_HEIGHT_REL, MAX_LINE_WIDTH_REL, SAFE_BOTTOM

# Text this fraction of the frame's shorter side high (16:9 as before: 6% of the height).
FONT_OF_SHORT_SIDE = float(DEFAULT_STYLE["fontSizeRel"])
LINE_SPACING = LINE_HEIGHT_REL / FONT_OF_SHORT_SIDE   # line pitch in font sizes (1.25)
# A caption needing more lines than this at full size is set smaller, down to MIN_SCALE of it;
# beyond that it keeps its size and takes the lines it needs (nothing is cut).
# (0.6: a 60-character Korean caption, about 57 font sizes wide, fits three 9:16 lines; the
# text is then 3.6% of the width, 39 px on a 1080-wide phone video, still larger than the
# captions short-form apps draw themselves.)
MIN_SCALE = 0.6
# The narrowest a character is taken to be (normalize._text_units: Latin 0.58, wide 1.0).
MIN_CHAR_UNITS = 0.58
_SCALES = tuple(round(1.0 - 0.05 * i, 2) for i in range(int(round((1.0 - MIN_SCALE) / 0.05)) + 1))


@dataclass(frozen=True)
class CaptionLayout:
    font_rel: float      # font size / frame height (MotionText's fontSizeRel)
    bottom: float        # the last line's baseline box bottom, as a fraction of the height
    max_lines: int
    line_width_rel: float  # of the frame's width
    aspect: float        # width / height

    def max_units(self, scale: float = 1.0) -> float:
        """A line's width in font sizes (wrap_lines' units)."""
        return self.line_width_rel * self.aspect / (self.font_rel * scale)

    def line_pitch(self, scale: float = 1.0) -> float:
        return self.font_rel * scale * LINE_SPACING


def caption_layout(aspect: float) -> CaptionLayout:
    """The default layout for a frame of ``aspect`` (width / height).

    Landscape (16:9, 4:3): as before, bottom at 90% (goldens unchanged), two lines.
    Portrait (9:16, 2:3): the bottom fifth is where TikTok, Reels and Shorts draw the account
    name, the description and the sound (their published safe zones leave 20-25% at the bottom),
    so captions end at 78% of the height: the lower third, above that band; three lines.
    Square and 4:5 (feeds, whose players cover little of the picture): bottom at 86%, three lines.
    """
    font_rel = FONT_OF_SHORT_SIDE * min(1.0, aspect)
    if aspect >= 1.2:
        return CaptionLayout(font_rel, SAFE_BOTTOM, 2, MAX_LINE_WIDTH_REL, aspect)
    if aspect < 0.7:
        return CaptionLayout(font_rel, 0.78, 3, MAX_LINE_WIDTH_REL, aspect)
    return CaptionLayout(font_rel, 0.86, 3, MAX_LINE_WIDTH_REL, aspect)


def caption_style(layout: CaptionLayout, scale: float = 1.0, only_size: bool = False) -> dict[str, Any]:
    """The default text style at the layout's size (its outline scaled with it); with
    ``only_size``, just the keys that a cue set smaller overrides."""
    k = layout.font_rel * scale / FONT_OF_SHORT_SIDE
    stroke = dict(DEFAULT_STYLE["stroke"], widthRel=round(DEFAULT_STYLE["stroke"]["widthRel"] * k, 6))
    size = {"fontSizeRel": round(layout.font_rel * scale, 6), "stroke": stroke}
    return size if only_size else {**DEFAULT_STYLE, **size}


def fit_lines(text: str, layout: CaptionLayout, wrap: Callable[[str, float], list[str]]) -> tuple[list[str], float]:
    """The text's lines and the scale of the font they are set at: the largest of _SCALES at
    which they are at most ``layout.max_lines``, else full size with as many lines as it takes."""
    if len(text) * MIN_CHAR_UNITS > layout.max_lines * layout.max_units(MIN_SCALE):
        # Too long to fit at any scale: wrapped once, not once per scale (cues of 2,000
        # characters, 20,000 of them, are allowed).
        return wrap(text, layout.max_units()), 1.0
    for scale in _SCALES:
        lines = wrap(text, layout.max_units(scale))
        if len(lines) <= layout.max_lines:
            return lines, scale
    return wrap(text, layout.max_units()), 1.0
