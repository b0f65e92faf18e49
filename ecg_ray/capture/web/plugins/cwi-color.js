import { useLayer, dropLayer, withDefaults, bool, speakerColor, baseColorOf, mixColor, rgba, clamp01 } from "./_lib.js";

// Karaoke colouring: the word takes the speaker's colour letter by letter over the window
// (each letter blends from the text's own colour to the target within its 1/letters slice),
// or all at once with a smooth blend when bulk. Colour: params.color when a valid #rrggbb,
// else params.palette[params.speaker], else #FFD400.
// The only plugin here whose end state is NOT plain text: at progress 1 (and after its window,
// where the renderer keeps calling it with 1) the word stays coloured, which is the point of
// karaoke. Note that a node whose cwi-color was never initialized (a seek that jumps past the
// window without landing in it) shows the original colour: see the report on pre-rolling.
const NAME = "cwi-color";
const DEFAULTS = { speaker: "", palette: {}, color: "", bulk: false };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const target = speakerColor(P, "#FFD400");
    const bulk = bool(P, "bulk", false);
    const from = baseColorOf(el);
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    const n = letters.length;
    return (p) => {
      layer.begin();
      if (p > 0) {
        if (bulk || p >= 1 || n === 0) {
          layer.root({ color: rgba(mixColor(from, target, p)) });
        } else {
          letters.forEach((g, i) => {
            const q = clamp01(p * n - i);
            if (q > 0) layer.char(g, { color: rgba(mixColor(from, target, q)) });
          });
        }
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
