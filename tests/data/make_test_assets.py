"""How the vendored test assets were made (run once; not needed by the tests).

    pip install --target /tmp/ftlib fonttools brotli
    PYTHONPATH=/tmp/ftlib .venv/bin/python tests/data/make_test_assets.py

- tests/data/block.ttf: "ECG Block Test", a font written for these tests. Every printable
  ASCII character except the space is one solid rectangle (the full advance less 40 units on
  each side, from the baseline to 720 units up), so text set in it is a row of solid blocks
  that no system font draws: a test can tell from the pixels that the font was used.
- tests/samples/v2.0/fonts/NotoSansKR-Regular.woff2: the same font as WOFF2, a stand-in under
  the name the with_assets_v20 sample asks for (the sample does not ship its files). It is
  NOT Noto Sans KR.
- tests/samples/v2.0/images/logo.png: a 64x64 stand-in logo (orange square, teal border).

All three are our own work, released under CC0 1.0 (no rights reserved).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "samples" / "v2.0"

UPM, ADVANCE, SIDE, TOP = 1000, 600, 40, 720


def block_font():
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    chars = [chr(c) for c in range(0x21, 0x7F)]
    names = [".notdef", "space"] + [f"g{ord(c):02x}" for c in chars]
    fb = FontBuilder(UPM, isTTF=True)
    fb.setupGlyphOrder(names)
    cmap = {0x20: "space", **{ord(c): f"g{ord(c):02x}" for c in chars}}
    fb.setupCharacterMap(cmap)

    def box() -> object:
        pen = TTGlyphPen(None)
        pen.moveTo((SIDE, 0))
        pen.lineTo((SIDE, TOP))
        pen.lineTo((ADVANCE - SIDE, TOP))
        pen.lineTo((ADVANCE - SIDE, 0))
        pen.closePath()
        return pen.glyph()

    empty = TTGlyphPen(None).glyph()
    glyphs = {n: (empty if n == "space" else box()) for n in names}
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({n: (ADVANCE, 0 if n == "space" else SIDE) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "ECG Block Test", "styleName": "Regular",
                       "copyright": "CC0 1.0: no rights reserved (written for ecg_ray's tests)"})
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    return fb.font


def main() -> None:
    from PIL import Image, ImageDraw

    font = block_font()
    font.save(HERE / "block.ttf")
    (SAMPLES / "fonts").mkdir(parents=True, exist_ok=True)
    font.flavor = "woff2"
    font.save(SAMPLES / "fonts" / "NotoSansKR-Regular.woff2")

    (SAMPLES / "images").mkdir(parents=True, exist_ok=True)
    im = Image.new("RGBA", (64, 64), (0x4E, 0xCD, 0xC4, 255))
    ImageDraw.Draw(im).rectangle((8, 8, 55, 55), fill=(0xFF, 0x6B, 0x35, 255))
    im.save(SAMPLES / "images" / "logo.png", optimize=True)


if __name__ == "__main__":
    main()
