import { withDefaults, num, channels } from "./_lib.js";

// The whole caption shakes left and right: tx = amplitudePx * sin(2*pi*cycles*progress),
// at rest at both ends for whole/half cycles (compose "add"). Older MotionText name, kept for
// existing scenarios (manifest: plugins_manifests/shakeX@1.0.0.json).
const NAME = "shakeX";
const DEFAULTS = { amplitudePx: 6, cycles: 6 };

export default {
  name: NAME,
  version: "1.0.0",
  evalChannels(spec, p, _ctx) {
    const P = withDefaults(spec && spec.params, DEFAULTS);
    const amp = num(P, "amplitudePx", 6);
    const cycles = num(P, "cycles", 6);
    return channels({ tx: amp * Math.sin(2 * Math.PI * cycles * p) });
  },
};
