import { useLayer, dropLayer, withDefaults, num, ease, staggerProgress, clamp, clamp01, hashRandom, fmt, marker } from "./_lib.js";

// Letters start scattered around their place and are pulled in, one after another, snapping
// home with an elastic wobble. magnetStrength (px) sets how far out they start (2x-3x of it,
// direction from hashRandom(letter index)); elasticity sets how springy the snap is.
// Timing rule (the renderer normalizes the window to 1): attractionDelay (between letters) and
// animationDuration (one letter's pull) are read in window units (the window counts as one
// nominal second); the whole schedule is compressed to fit when longer than the window and
// finishes early when shorter. At progress 1 the text is plain again.
const NAME = "magnetic";
const DEFAULTS = { magnetStrength: 15, animationDuration: 1.2, attractionDelay: 0.1, elasticity: 0.8 };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const strength = Math.max(0, num(P, "magnetStrength", 15));
    const dur = Math.max(0.01, num(P, "animationDuration", 1.2));
    const delay = Math.max(0, num(P, "attractionDelay", 0.1));
    const elasticity = clamp(num(P, "elasticity", 0.8), 0.05, 4);
    // Higher elasticity: shorter period, more wobble.
    const e = ease(`elastic.out(1, ${fmt(clamp(0.55 / elasticity, 0.15, 1.5), 3)})`);
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    const seed = layer.text;
    const mark = marker("data-magnetic"); // RendererV2 re-initializes "magnetic" unless [data-magnetic] exists
    return (p) => {
      layer.begin();
      if (p < 1) {
        letters.forEach((g, i) => {
          const lin = staggerProgress(p, i, letters.length, delay, dur);
          if (lin >= 1) return;
          const ang = hashRandom(NAME, seed, i, "a") * 2 * Math.PI;
          const dist = strength * (2 + hashRandom(NAME, seed, i, "d"));
          const k = 1 - e(lin); // 1 -> 0 (overshoots past 0)
          const rot = (hashRandom(NAME, seed, i, "r") * 2 - 1) * 25 * k;
          layer.char(g, {
            transform: `translate(${fmt(Math.cos(ang) * dist * k, 2)}px, ${fmt(Math.sin(ang) * dist * k, 2)}px) rotate(${fmt(rot, 2)}deg)`,
            opacity: clamp01(lin / 0.25),
          });
        });
        layer.extra(mark, "after");
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
