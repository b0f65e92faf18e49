import { useLayer, dropLayer, withDefaults, num, str, ease, clamp01, fmt, channels, resetChannels } from "./_lib.js";

// A card flip that types itself: the whole caption flips from flipAngle back to face-on over
// the first flipDuration of the window (channel half: scaleX = cos(angle) for "horizontal",
// scaleY for "vertical", i.e. the 2-D projection of the flip), and the letters flip in one by
// one (DOM half: rotateY/rotateX from 90 degrees to 0, fading in).
// Timing rule (the renderer normalizes the window to 1): typing starts once the card flip is
// typingDelay of the way through (at typingDelay * flipDuration); typingSpeed is letters per
// nominal second with the window counting as one second; when the letters would not all be
// in by the end of the window, the typing is sped up to end exactly at progress 1.
// At progress 1 the caption is face-on and the text plain; the DOM half also puts
// --mtx-sx/--mtx-sy back to rest at progress 0/1 (the renderer keeps the last in-window value
// once the window is over).
const NAME = "fliptype";
const DEFAULTS = { typingSpeed: 15, flipDuration: 0.6, flipAngle: 180, flipDirection: "horizontal", typingDelay: 0.3 };
const LETTER_FLIP = 0.12; // one letter's flip, window units

function settings(params) {
  const P = withDefaults(params, DEFAULTS);
  return {
    speed: Math.max(0.01, num(P, "typingSpeed", 15)),
    flipDur: clamp01(num(P, "flipDuration", 0.6)),
    angle: num(P, "flipAngle", 180),
    vertical: str(P, "flipDirection", "horizontal") === "vertical",
    delay: clamp01(num(P, "typingDelay", 0.3)),
  };
}

const flipEase = ease("power2.out");

export default {
  name: NAME,
  version: "2.0.0",
  evalChannels(spec, p, _ctx) {
    const S = settings(spec && spec.params);
    const u = S.flipDur > 0 ? clamp01(p / S.flipDur) : 1;
    const c = Math.cos(((S.angle * (1 - flipEase(u))) * Math.PI) / 180);
    return channels(S.vertical ? { sx: 1, sy: c } : { sx: c, sy: 1 });
  },
  animate(el, params, _ctx, _duration) {
    const S = settings(params);
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    const n = letters.length;
    const start = S.delay * S.flipDur;
    let interval = 1 / S.speed;
    let flip = LETTER_FLIP;
    const need = Math.max(0, n - 1) * interval + flip;
    if (start + need > 1) {
      const k = Math.max(1e-6, 1 - start) / need;
      interval *= k;
      flip *= k;
    }
    const axis = S.vertical ? "rotateX" : "rotateY";
    return (p) => {
      if (p <= 0 || p >= 1) resetChannels(el, ["sx", "sy"]);
      layer.begin();
      if (p < 1) {
        letters.forEach((g, i) => {
          const q = clamp01((p - start - i * interval) / flip);
          if (q >= 1) return;
          if (q <= 0) { layer.char(g, { visibility: "hidden" }); return; }
          layer.char(g, { transform: `perspective(400px) ${axis}(${fmt(90 * (1 - flipEase(q)), 2)}deg)`, opacity: clamp01(q / 0.4) });
        });
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
