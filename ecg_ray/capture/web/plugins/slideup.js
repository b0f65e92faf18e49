import { useLayer, dropLayer, withDefaults, num, str, bool, ease, staggerProgress, clamp01, fmt } from "./_lib.js";

// Words slide up from slideDistance px below, fading in (and de-blurring when blurEffect).
// Timing rule (the renderer normalizes the window to 1): staggerDelay (between words) and
// animationDuration (one word's slide) are read in window units (the window counts as one
// nominal second); the whole schedule (staggerDelay * (words - 1) + animationDuration) is
// compressed to fit when longer than the window and finishes early when shorter.
// At progress 1 the text is plain again.
const NAME = "slideup";
const DEFAULTS = { slideDistance: 30, animationDuration: 1, staggerDelay: 0.12, easeType: "power2.out", blurEffect: true };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const dist = num(P, "slideDistance", 30);
    const dur = Math.max(0.01, num(P, "animationDuration", 1));
    const stagger = Math.max(0, num(P, "staggerDelay", 0.12));
    const e = ease(str(P, "easeType", "power2.out"));
    const blur = bool(P, "blurEffect", true);
    const layer = useLayer(el, NAME);
    const words = layer.words;
    return (p) => {
      layer.begin();
      if (p < 1) {
        words.forEach((_w, j) => {
          const lin = staggerProgress(p, j, words.length, stagger, dur);
          if (lin >= 1) return;
          const q = e(lin); // may overshoot 1 for back/elastic/bounce
          const style = {
            transform: `translateY(${fmt(dist * (1 - q), 2)}px)`,
            opacity: clamp01(lin / 0.6),
          };
          if (blur) {
            const b = 6 * (1 - clamp01(q));
            if (b > 0.01) style.filter = `blur(${fmt(b, 2)}px)`;
          }
          layer.word(j, style);
        });
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
