import { useLayer, dropLayer, withDefaults, num, envelope, valueNoise, clamp01, fmt, marker } from "./_lib.js";

// Flames rising behind the text, drawn deterministically (no images, no GIF): a transparent
// copy of the text behind it carries a stack of warm text-shadows that climb above the
// letters; each layer's height, sway, blur and brightness flicker with smooth value noise
// (hashRandom at integer steps, cosine-interpolated) of progress * cycles, so any progress
// always draws the same flames. baseOpacity = flame strength, flicker = how much they move.
// Fades in/out over the first/last 5% of the window and is exactly off at progress 0 and 1.
const NAME = "flames";
const DEFAULTS = { baseOpacity: 0.8, flicker: 0.3, cycles: 12 };

// [rise (em), blur (em), r, g, b, alpha weight]
const LAYERS = [
  [0.0, 0.05, 255, 250, 200, 1.0],
  [0.08, 0.1, 255, 230, 100, 1.0],
  [0.18, 0.16, 255, 190, 40, 1.0],
  [0.32, 0.22, 255, 135, 10, 0.95],
  [0.5, 0.3, 245, 85, 0, 0.85],
  [0.7, 0.38, 210, 40, 0, 0.7],
  [0.92, 0.48, 150, 20, 0, 0.5],
];

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const base = clamp01(num(P, "baseOpacity", 0.8));
    const flick = clamp01(num(P, "flicker", 0.3));
    const cycles = Math.max(0, num(P, "cycles", 12));
    const layer = useLayer(el, NAME);
    const seed = layer.text;
    // RendererV2 re-initializes "flames" every seek unless img[data-flames] exists: a hidden
    // <img> with no src (nothing is loaded).
    const mark = marker("data-flames", "img");
    // An empty box the layer system fills with a copy of the composed text on every render
    // (letters hidden by other plugins stay hidden, so they do not burn either).
    const fire = document.createElement("div");
    fire.setAttribute("aria-hidden", "true");
    return (p) => {
      layer.begin();
      const env = envelope(p, 0.05);
      if (env > 0 && base > 0) {
        const x = p * cycles * 2; // two noise steps per flicker cycle
        const shadows = LAYERS.map(([rise, blur, r, g, b, w], k) => {
          const n1 = valueNoise(x, NAME, seed, "h", k);
          const n2 = valueNoise(x, NAME, seed, "x", k);
          const n3 = valueNoise(x, NAME, seed, "a", k);
          const dy = -(rise * (1 + flick * (n1 - 0.5) * 1.6) + 0.02);
          const dx = flick * (n2 - 0.5) * 0.25 * (k + 1) / LAYERS.length;
          const bl = blur * (1 + flick * (n3 - 0.5) * 0.6);
          const a = clamp01(base * env * w * (1 - flick * 0.8 * n3));
          return `rgba(${r}, ${g}, ${b}, ${fmt(a, 3)}) ${fmt(dx, 3)}em ${fmt(dy, 3)}em ${fmt(bl, 3)}em`;
        });
        fire.setAttribute(
          "style",
          "position: absolute; left: 0px; top: 0px; width: 100%; height: 100%; pointer-events: none; z-index: -1; " +
            `-webkit-text-fill-color: transparent; text-shadow: ${shadows.join(", ")};`,
        );
        layer.mirror(fire, "before").extra(mark, "after");
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
