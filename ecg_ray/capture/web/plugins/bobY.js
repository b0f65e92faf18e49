import { withDefaults, num, channels, resetChannels } from "./_lib.js";

// The whole caption bobs up and down: ty = -amplitudePx * sin(2*pi*cycles*progress)
// (starts and, for whole/half cycles, ends at rest; composes with "add").
// Hybrid: the channel half draws the motion; the DOM half draws nothing and only puts
// --mtx-ty back to rest at progress 0/1, because the renderer stops calling evalChannels once
// the window is over and would otherwise keep the last in-window offset.
const NAME = "bobY";
const DEFAULTS = { amplitudePx: 8, cycles: 1 };

function evalBob(params, p) {
  const P = withDefaults(params, DEFAULTS);
  const amp = num(P, "amplitudePx", 8);
  const cycles = num(P, "cycles", 1);
  return channels({ ty: -amp * Math.sin(2 * Math.PI * cycles * p) });
}

export default {
  name: NAME,
  version: "2.0.0",
  evalChannels(spec, p, _ctx) {
    return evalBob(spec && spec.params, p);
  },
  animate(el, _params, _ctx, _duration) {
    return (p) => {
      if (p <= 0 || p >= 1) resetChannels(el, ["ty"]);
    };
  },
  cleanup(_el) {},
};
