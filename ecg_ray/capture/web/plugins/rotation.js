import { useLayer, dropLayer, withDefaults, num, bool, ease, staggerProgress, clamp01, fmt } from "./_lib.js";

// Letters spin into place in 3D, one after another: each starts turned by rotationDegrees
// around the enabled axes (axisX / axisY / axisZ; Y when none is enabled) and unwinds to 0
// with power3.out, fading in over the first quarter of its turn. perspective is the 3D
// viewing distance in px.
// Timing rule (the renderer normalizes the window to 1): staggerDelay and animationDuration
// are read in window units (the window counts as one nominal second); the whole schedule is
// compressed to fit when longer than the window and finishes early when shorter.
// At progress 1 the text is plain again.
const NAME = "rotation";
const DEFAULTS = { rotationDegrees: 360, animationDuration: 1.5, staggerDelay: 0.1, perspective: 800, axisX: false, axisY: true, axisZ: false };

export default {
  name: NAME,
  version: "2.0.0",
  animate(el, params, _ctx, _duration) {
    const P = withDefaults(params, DEFAULTS);
    const deg = num(P, "rotationDegrees", 360);
    const dur = Math.max(0.01, num(P, "animationDuration", 1.5));
    const stagger = Math.max(0, num(P, "staggerDelay", 0.1));
    const persp = Math.max(1, num(P, "perspective", 800));
    let ax = bool(P, "axisX", false), ay = bool(P, "axisY", true);
    const az = bool(P, "axisZ", false);
    if (!ax && !ay && !az) ay = true;
    const e = ease("power3.out");
    const layer = useLayer(el, NAME);
    const letters = layer.letters;
    return (p) => {
      layer.begin();
      if (p < 1) {
        letters.forEach((g, i) => {
          const lin = staggerProgress(p, i, letters.length, stagger, dur);
          if (lin >= 1) return;
          const a = fmt(deg * (1 - e(lin)), 2);
          let tf = `perspective(${fmt(persp, 1)}px)`;
          if (ax) tf += ` rotateX(${a}deg)`;
          if (ay) tf += ` rotateY(${a}deg)`;
          if (az) tf += ` rotateZ(${a}deg)`;
          layer.char(g, { transform: tf, opacity: clamp01(lin / 0.25) });
        });
      }
      layer.commit();
    };
  },
  cleanup(el) { dropLayer(el, NAME); },
};
