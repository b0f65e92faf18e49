import { withDefaults, num, channels } from "./_lib.js";

// The whole caption turns fullTurns times around its centre over the window:
// rot = 360 * fullTurns * progress degrees (compose "add" to combine with other rotations).
// Channel plugin: once the window is over the renderer stops calling it and keeps the last
// value it returned (for whole turns that is a multiple of 360 degrees, i.e. upright).
const NAME = "spin";
const DEFAULTS = { fullTurns: 1 };

export default {
  name: NAME,
  version: "2.0.0",
  evalChannels(spec, p, _ctx) {
    const P = withDefaults(spec && spec.params, DEFAULTS);
    return channels({ rot: 360 * num(P, "fullTurns", 1) * p });
  },
};
