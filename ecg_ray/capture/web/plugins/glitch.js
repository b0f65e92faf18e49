import { useLayer, dropLayer, withDefaults, num, bool, envelope, hashRandom, fmt, marker } from "./_lib.js";

// Digital glitch: in bursts the text jumps sideways and skews, red/cyan copies split off
// behind it (colorSeparation) and horizontal slices of the text tear sideways (noiseEffect).
// Timing rule (the renderer normalizes the window to 1): the window plays one glitch pattern
// of animationDuration nominal seconds; a burst slot starts every glitchFrequency of those
// seconds, so the window holds animationDuration / glitchFrequency slots. Each slot's burst
// (length, strength, offsets) comes from hashRandom(slot, ...), so any progress always draws
// the same frame. glitchIntensity is the burst offset in px.
// Exactly off at progress 0 and 1 (5% fade at both ends).
const NAME = "glitch";
const DEFAULTS = { glitchIntensity: 5, animationDuration: 2, glitchFrequency: 0.3, colorSeparation: true, noiseEffect: true };

// An empty box; the layer system fills it with a copy of the composed text on every render
// (so hidden / faded letters of other plugins stay hidden / faded in the copies too).
function clone() {
  const d = document.createElement("div");
  d.setAttribute("aria-hidden", "true");
  return d;
}

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const I = Math.max(0, num(P, "glitchIntensity", 5));
    const cycle = Math.max(0.05, num(P, "animationDuration", 2));
    const freq = Math.max(0.02, num(P, "glitchFrequency", 0.3));
    const sep = bool(P, "colorSeparation", true);
    const noise = bool(P, "noiseEffect", true);
    const layer = useLayer(el, NAME);
    const seed = layer.text;
    const mark = marker("data-glitch"); // RendererV2 re-initializes "glitch" unless [data-glitch] exists
    const red = clone(), cyan = clone();
    const slices = [clone(), clone()];
    const abs = "position: absolute; left: 0px; top: 0px; width: 100%; height: 100%; pointer-events: none;";
    return (p) => {
      layer.begin();
      const env = envelope(p, 0.05);
      if (env > 0) {
        const tau = p * cycle; // nominal seconds into the pattern
        const slot = Math.floor(tau / freq);
        const within = tau / freq - slot;
        const r = (...k) => hashRandom(NAME, seed, slot, ...k);
        const burstLen = 0.25 + 0.35 * r("len");
        const strength = r("on") < 0.2 ? 0 : 0.4 + 0.6 * r("str");
        const active = within < burstLen && strength > 0;
        const sub = Math.floor((within / burstLen) * 3); // three jumps per burst
        const rs = (...k) => hashRandom(NAME, seed, slot, sub, ...k);
        const g = active ? strength * env : 0;
        if (g > 0) {
          const dx = (rs("dx") * 2 - 1) * I * g;
          const skew = (rs("sk") * 2 - 1) * 6 * g;
          layer.root({ transform: `translateX(${fmt(dx, 2)}px) skewX(${fmt(skew, 2)}deg)` });
        }
        if (sep && g > 0) {
          const d = I * g * (0.5 + rs("sep"));
          red.setAttribute("style", `${abs} z-index: -1; -webkit-text-fill-color: rgba(255, 0, 64, 0.85); text-shadow: none; transform: translate(${fmt(-d, 2)}px, 0px);`);
          cyan.setAttribute("style", `${abs} z-index: -1; -webkit-text-fill-color: rgba(0, 255, 255, 0.85); text-shadow: none; transform: translate(${fmt(d, 2)}px, 0px);`);
          layer.mirror(red, "before").mirror(cyan, "before");
        }
        if (noise && g > 0) {
          slices.forEach((s, k) => {
            const top = rs("top", k) * 85;
            const h = 4 + rs("h", k) * 18;
            const dx = (rs("sx", k) * 2 - 1) * I * 2.5 * g;
            s.setAttribute("style", `${abs} clip-path: inset(${fmt(top, 2)}% 0px ${fmt(Math.max(0, 100 - top - h), 2)}% 0px); transform: translateX(${fmt(dx, 2)}px);`);
            layer.mirror(s, "after");
          });
        }
        layer.extra(mark, "after");
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
