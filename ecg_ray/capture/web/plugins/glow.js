import { useLayer, dropLayer, withDefaults, num, str, bool, envelope, parseColor, rgba, fmt, marker } from "./_lib.js";

// A coloured glow around the text: two stacked drop-shadow filters on the effects root (so
// the caption's own outline/shadow keeps glowing with it). With pulse, the glow breathes
// `cycles` times over the window between 55% and 100% of `intensity`.
// Fades in/out over the first/last 5% of the window and is exactly off at progress 0 and 1
// (the renderer keeps calling a DOM plugin with progress 1 after its window, and a node whose
// plugin was never initialized shows no glow either).
const NAME = "glow";
const DEFAULTS = { color: "#00ffff", intensity: 0.4, pulse: true, cycles: 8 };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const color = parseColor(str(P, "color", "#00ffff")) || parseColor("#00ffff");
    const intensity = Math.max(0, num(P, "intensity", 0.4));
    const pulse = bool(P, "pulse", true);
    const cycles = Math.max(0, num(P, "cycles", 8));
    const layer = useLayer(el, NAME);
    const mark = marker("data-glow"); // RendererV2 re-initializes "glow" unless [data-glow] exists
    return (p) => {
      layer.begin();
      const env = envelope(p, 0.05);
      if (env > 0) {
        const breath = pulse ? 0.55 + 0.45 * (1 - Math.cos(2 * Math.PI * cycles * p)) / 2 : 1;
        const k = Math.min(1.5, intensity * breath) * env;
        if (k > 0.001) {
          const r1 = 0.04 + 0.12 * k, r2 = 0.12 + 0.4 * k;
          layer.root({
            filter: `drop-shadow(0 0 ${fmt(r1, 3)}em ${rgba(color, Math.min(1, 0.35 + k))}) ` +
              `drop-shadow(0 0 ${fmt(r2, 3)}em ${rgba(color, Math.min(1, 0.2 + k))})`,
          });
        }
        layer.extra(mark, "after");
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
