import {
  useLayer, dropLayer, withDefaults, num, obj, speakerColor, baseColorOf, mixColor, rgba, envelope, fmt,
} from "./_lib.js";

// Whispered speech: the word shrinks to shrink.scale, sinks shrink.drop px and dims a little
// for the whole window (easing in/out over the first/last 20%), with a soft flutter of
// flutter.amp extra shrink. When params.color / palette[speaker] gives a colour, the word is
// tinted with it along the same envelope.
// Timing rule (the renderer normalizes the window to 1): flutter.freq (Hz) counts cycles per
// nominal second with the window counting as one second. Plain at progress 0 and 1.
const NAME = "cwi-whisper";
const DEFAULTS = { speaker: "", palette: {}, color: "" };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const shrink = obj(P, "shrink"), flutter = obj(P, "flutter");
    const minScale = Math.max(0.05, num(shrink, "scale", 0.6));
    const drop = num(shrink, "drop", 6);
    const amp = Math.max(0, num(flutter, "amp", 0.02));
    const freq = Math.max(0, num(flutter, "freq", 8));
    const tint = speakerColor(P, null);
    const from = baseColorOf(el);
    const layer = useLayer(el, NAME);
    return (p) => {
      layer.begin();
      const e = envelope(p, 0.2);
      if (e > 0) {
        const fl = amp * e * (0.5 + 0.5 * Math.sin(2 * Math.PI * freq * p));
        const s = 1 - (1 - minScale) * e - fl;
        const style = {
          transformOrigin: "50% 100%",
          transform: `translateY(${fmt(drop * e, 2)}px) scale(${fmt(s)})`,
          opacity: 1 - 0.3 * e,
        };
        if (tint) style.color = rgba(mixColor(from, tint, e));
        layer.root(style);
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
