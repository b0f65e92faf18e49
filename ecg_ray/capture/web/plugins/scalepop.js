import { useLayer, dropLayer, withDefaults, num, bool, staggerProgress, clamp01, fmt } from "./_lib.js";

// Letters pop in: grow from 0 past popScale, then settle back to 1 with a damped bounce
// (bounceStrength = how many / how strong the bounces are); colorPop brightens a letter while
// it is larger than 1. Also drawn for the old name "pop", whose "maxScale" param is read as
// popScale when popScale is not given.
// Timing rule (the renderer normalizes the window to 1): staggerDelay and animationDuration are
// read in window units (the window counts as one nominal second); the whole schedule
// (staggerDelay * (letters - 1) + animationDuration) is compressed to fit when longer than the
// window and finishes early when shorter. At progress 1 the text is plain again.
const NAME = "scalepop";
const DEFAULTS = { popScale: 1.5, animationDuration: 1.2, staggerDelay: 0.08, bounceStrength: 0.6, colorPop: true };

const GROW = 0.3; // share of a letter's animation spent growing to popScale

// Scale of one letter at its own progress q in [0, 1].
function popCurve(q, peak, bounce) {
  if (q <= 0) return 0;
  if (q >= 1) return 1;
  if (q < GROW) {
    const u = q / GROW;
    return peak * (1 - Math.pow(1 - u, 3)); // ease out to the peak
  }
  const u = (q - GROW) / (1 - GROW);
  const waves = 0.5 + bounce * 1.5; // half-oscillations after the peak
  const damp = Math.exp(-u * (4.5 - Math.min(2, bounce) * 1.2));
  return 1 + (peak - 1) * Math.cos(Math.PI * waves * u) * damp * (1 - u);
}

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const given = params && params.popScale !== undefined ? P.popScale : params && params.maxScale !== undefined ? params.maxScale : P.popScale;
    const peak = Math.max(1, num({ v: given }, "v", 1.5));
    const dur = Math.max(0.01, num(P, "animationDuration", 1.2));
    const stagger = Math.max(0, num(P, "staggerDelay", 0.08));
    const bounce = Math.max(0, num(P, "bounceStrength", 0.6));
    const colorPop = bool(P, "colorPop", true);
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    return (p) => {
      layer.begin();
      if (p < 1) {
        letters.forEach((g, i) => {
          const q = staggerProgress(p, i, letters.length, stagger, dur);
          if (q >= 1) return;
          const s = popCurve(q, peak, bounce);
          const style = { transform: `scale(${fmt(s)})`, opacity: clamp01(q / 0.12) };
          if (colorPop && s > 1.001 && peak > 1) {
            const k = clamp01((s - 1) / (peak - 1));
            style.filter = `brightness(${fmt(1 + 0.45 * k, 3)})`;
          }
          layer.char(g, style);
        });
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
