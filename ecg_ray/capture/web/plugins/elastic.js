import { useLayer, dropLayer, withDefaults, num, staggerProgress, clamp01, fmt } from "./_lib.js";

// Words spring in: each grows from startScale to `overshoot` and then settles to 1 with a
// damped elastic wobble (bounceStrength = how many / how strong the wobbles are).
// Timing rule (the renderer normalizes the window to 1): staggerDelay (between words) and
// animationDuration (one word's spring) are read in window units (the window counts as one
// nominal second); the whole schedule is compressed to fit when longer than the window and
// finishes early when shorter. At progress 1 the text is plain again.
const NAME = "elastic";
const DEFAULTS = { bounceStrength: 0.7, animationDuration: 1.5, staggerDelay: 0.1, startScale: 0, overshoot: 1.3 };

const RISE = 0.25; // share of a word's animation spent growing to the overshoot

function springCurve(q, s0, peak, bounce) {
  if (q >= 1) return 1;
  if (q < RISE) {
    const u = q / RISE;
    return s0 + (peak - s0) * (1 - Math.pow(1 - u, 2));
  }
  const u = (q - RISE) / (1 - RISE);
  const waves = 1 + bounce * 2.5; // half-oscillations while settling
  return 1 + (peak - 1) * Math.cos(Math.PI * waves * u) * Math.exp(-3 * u) * (1 - u);
}

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const bounce = Math.max(0, num(P, "bounceStrength", 0.7));
    const dur = Math.max(0.01, num(P, "animationDuration", 1.5));
    const stagger = Math.max(0, num(P, "staggerDelay", 0.1));
    const s0 = Math.max(0, num(P, "startScale", 0));
    const peak = Math.max(1, num(P, "overshoot", 1.3));
    const layer = useLayer(el, NAME);
    const words = layer.words;
    return (p) => {
      layer.begin();
      if (p < 1) {
        words.forEach((_w, j) => {
          const q = staggerProgress(p, j, words.length, stagger, dur);
          if (q >= 1) return;
          const s = springCurve(q, s0, peak, bounce);
          layer.word(j, { transform: `scale(${fmt(s)})`, opacity: s0 > 0.5 ? clamp01(q / 0.15) : clamp01(q / 0.08) });
        });
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
