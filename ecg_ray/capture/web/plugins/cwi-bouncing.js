import {
  useLayer, dropLayer, withDefaults, num, speakerColor, baseColorOf, mixColor, rgba, envelope, clamp, clamp01, fmt,
  channels, resetChannels,
} from "./_lib.js";

// A wave runs through the word: each letter hops up to waveHeight px in turn (DOM half), the
// whole word lifts a little with the wave (channel half: ty = -0.15 * waveHeight * sin(pi*p)).
// Timing rule (the renderer normalizes the window to 1): one letter's hop lasts letterDuration
// window units (not in the manifest, used by existing scenarios; default 0.5) and the hops are
// spread so the last one ends exactly at progress 1. When params.color / palette[speaker]
// gives a colour, the word is tinted with it while the wave runs (blended in/out over the
// first/last 10%). Everything is at rest and plain at progress 0 and 1; the DOM half also puts
// --mtx-ty back to rest at 0/1 (the renderer keeps the last in-window value once the window is
// over).
const NAME = "cwi-bouncing";
const DEFAULTS = { speaker: "", palette: {}, color: "", waveHeight: 12, letterDuration: 0.5 };

export default {
  name: NAME,
  version: "2.0.0",
  evalChannels(spec, p, _ctx) {
    const P = withDefaults(spec && spec.params, DEFAULTS);
    const h = num(P, "waveHeight", 12);
    return channels({ ty: -0.15 * h * Math.sin(Math.PI * clamp01(p)) });
  },
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const h = num(P, "waveHeight", 12);
    const hop = clamp(num(P, "letterDuration", 0.5), 0.05, 1);
    const tint = speakerColor(P, null);
    const from = baseColorOf(el);
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    const n = letters.length;
    const step = n > 1 ? (1 - hop) / (n - 1) : 0;
    return (p) => {
      if (p <= 0 || p >= 1) resetChannels(el, ["ty"]);
      layer.begin();
      if (p > 0 && p < 1) {
        letters.forEach((g, i) => {
          const q = clamp01((p - i * step) / hop);
          if (q <= 0 || q >= 1) return;
          const y = -h * Math.sin(Math.PI * q);
          layer.char(g, { transform: `translateY(${fmt(y, 2)}px)` });
        });
        if (tint) {
          const e = envelope(p, 0.1);
          if (e > 0) layer.root({ color: rgba(mixColor(from, tint, e)) });
        }
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
