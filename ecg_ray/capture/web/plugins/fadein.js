import { useLayer, dropLayer, withDefaults, num, str, ease, staggerProgress, fmt } from "./_lib.js";

// Letters fade (and grow from scaleStart) in one after another.
// Timing rule (the renderer normalizes the window to 1): staggerDelay and animationDuration are
// read in window units (the window counts as one nominal second); the whole schedule
// (staggerDelay * (letters - 1) + animationDuration) is compressed to fit when longer than the
// window, and finishes early when shorter. At progress 1 the text is plain again.
const NAME = "fadein";
const DEFAULTS = { staggerDelay: 0.1, animationDuration: 0.8, startOpacity: 0, scaleStart: 0.9, ease: "power2.out" };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const stagger = Math.max(0, num(P, "staggerDelay", 0.1));
    const dur = Math.max(0.01, num(P, "animationDuration", 0.8));
    const o0 = num(P, "startOpacity", 0);
    const s0 = num(P, "scaleStart", 0.9);
    const e = ease(str(P, "ease", "power2.out"));
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    return (p) => {
      layer.begin();
      if (p < 1) {
        letters.forEach((g, i) => {
          const lin = staggerProgress(p, i, letters.length, stagger, dur);
          if (lin >= 1) return;
          const q = e(lin);
          const op = o0 + (1 - o0) * Math.min(1, Math.max(0, q));
          const sc = s0 + (1 - s0) * q;
          layer.char(g, { opacity: op, transform: `scale(${fmt(sc)})` });
        });
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
