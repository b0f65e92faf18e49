import {
  useLayer, dropLayer, withDefaults, num, obj, speakerColor, baseColorOf, mixColor, rgba, valueNoise, fmt,
} from "./_lib.js";

// Loud speech: the word swells to pulse.scale and rises pulse.lift px at the middle of the
// window (sin(pi*p) curve), shivering by tremble.ampPx around the crest. When params.color /
// palette[speaker] gives a colour, the word is tinted with it along the same curve.
// Timing rule (the renderer normalizes the window to 1): tremble.freq (Hz) counts cycles per
// nominal second with the window counting as one second; the shiver is smooth value noise of
// progress (hashRandom), two samples per cycle. Plain at progress 0 and 1.
const NAME = "cwi-loud";
const DEFAULTS = { speaker: "", palette: {}, color: "" };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const pulse = obj(P, "pulse"), tremble = obj(P, "tremble");
    const scale = Math.max(0.1, num(pulse, "scale", 2.15));
    const lift = num(pulse, "lift", 12);
    const amp = Math.max(0, num(tremble, "ampPx", 1.5));
    const freq = Math.max(0, num(tremble, "freq", 12));
    const tint = speakerColor(P, null);
    const from = baseColorOf(el);
    const layer = useLayer(el, NAME);
    const seed = layer.text;
    return (p) => {
      layer.begin();
      if (p > 0 && p < 1) {
        const e = Math.sin(Math.PI * p);
        const shiver = amp * e * e;
        const x = p * freq * 2;
        const dx = shiver * (valueNoise(x, NAME, seed, "x") * 2 - 1);
        const dy = shiver * (valueNoise(x, NAME, seed, "y") * 2 - 1);
        const style = {
          transformOrigin: "50% 60%",
          transform: `translate(${fmt(dx, 2)}px, ${fmt(dy - lift * e, 2)}px) scale(${fmt(1 + (scale - 1) * e)})`,
        };
        if (tint) style.color = rgba(mixColor(from, tint, Math.min(1, e * 1.5)));
        layer.root(style);
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
