import { withDefaults, num, channels, resetChannels } from "./_lib.js";

// The whole caption swells to maxScale and back, `cycles` times over the window:
// s = 1 + (maxScale - 1) * (1 - cos(2*pi*cycles*progress)) / 2 (at rest at both ends for
// whole cycles; composes with "multiply").
// Hybrid: the channel half draws the motion; the DOM half draws nothing and only puts
// --mtx-sx/--mtx-sy back to rest at progress 0/1 (the renderer keeps the last in-window value
// once the window is over).
const NAME = "pulse";
const DEFAULTS = { maxScale: 1.2, cycles: 1 };

export default {
  name: NAME,
  version: "2.0.0",
  evalChannels(spec, p, _ctx) {
    const P = withDefaults(spec && spec.params, DEFAULTS);
    const max = num(P, "maxScale", 1.2);
    const cycles = num(P, "cycles", 1);
    const s = 1 + (max - 1) * (1 - Math.cos(2 * Math.PI * cycles * p)) / 2;
    return channels({ sx: s, sy: s });
  },
  animate(el, _params, _ctx, _duration) {
    return (p) => {
      if (p <= 0 || p >= 1) resetChannels(el, ["sx", "sy"]);
    };
  },
  cleanup(_el) {},
};
