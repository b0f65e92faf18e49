import { withDefaults, num, str, ease, channels } from "./_lib.js";

// The whole caption slides in from the left and fades in: tx = -distancePx * (1 - e),
// opacity = e with e = ease(progress). At rest (tx 0, opacity 1) at progress 1, so the value
// that sticks after the window is neutral. Older MotionText name used by existing scenarios
// (manifest: plugins_manifests/slideInLeft@1.0.0.json).
const NAME = "slideInLeft";
const DEFAULTS = { distancePx: 120, ease: "power2.out" };

export default {
  name: NAME,
  version: "1.0.0",
  evalChannels(spec, p, _ctx) {
    const P = withDefaults(spec && spec.params, DEFAULTS);
    const d = num(P, "distancePx", 120);
    const e = ease(str(P, "ease", "power2.out"))(Math.min(1, Math.max(0, p)));
    return channels({ tx: -d * (1 - e), opacity: e });
  },
};
