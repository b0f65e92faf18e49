import { useLayer, dropLayer, withDefaults, num, str, bool } from "./_lib.js";

// Characters appear one by one, with an optional cursor after the last typed character.
// Timing rule (the renderer normalizes the window to 1): typingSpeed (seconds per character)
// is read in window units (the window counts as one nominal second); when typing all
// characters would take longer than the window, the interval is shrunk so the last character
// appears exactly at progress 1. Each character (spaces included) appears at
// (index + 1) * interval; not-yet-typed characters are visibility:hidden so the line never
// reflows while typing.
// Cursor: solid while typing; once typing is done it blinks (when cursorBlink) as a function
// of progress: BLINKS on/off cycles per window. At progress 1 the cursor is gone and the text
// is plain. The cursor is a zero-width inline box, so it never moves the text.
// soundEffect is ignored: a burned-in video caption has no audio track to play it on.
const NAME = "typewriter";
const DEFAULTS = { typingSpeed: 0.05, cursorBlink: true, cursorChar: "|", showCursor: true, soundEffect: false };
const BLINKS = 4;

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const speed = Math.max(1e-4, num(P, "typingSpeed", 0.05));
    const blink = bool(P, "cursorBlink", true);
    const show = bool(P, "showCursor", true);
    const cursorChar = str(P, "cursorChar", "|");
    const layer = useLayer(el, NAME);
    const n = layer.graphemes.length;
    const interval = n * speed > 1 ? 1 / Math.max(1, n) : speed;
    const doneAt = n * interval;
    let cursor = null;
    if (show && cursorChar) {
      cursor = document.createElement("span");
      cursor.setAttribute("data-ecg-cursor", "");
      const glyph = document.createElement("span");
      glyph.textContent = cursorChar; // params are text too: never parsed as HTML
      glyph.setAttribute("style", "display: inline-block; white-space: pre;");
      cursor.appendChild(glyph);
    }
    return (p) => {
      layer.begin();
      if (p < 1) {
        const typed = p >= doneAt ? n : Math.min(n, Math.floor(p / interval + 1e-9));
        for (let i = typed; i < n; i++) layer.char(i, { visibility: "hidden" });
        if (cursor) {
          let on = true;
          if (typed >= n && blink) on = Math.floor(p * BLINKS * 2) % 2 === 0;
          cursor.setAttribute(
            "style",
            "display: inline-block; width: 0px; white-space: pre; overflow: visible;" + (on ? "" : " visibility: hidden;"),
          );
          layer.extra(cursor, typed);
        }
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
