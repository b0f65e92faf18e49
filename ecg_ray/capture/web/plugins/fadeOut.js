import { withDefaults, num, str, ease, channels } from "./_lib.js";

// The whole caption fades out over its window: opacity = 1 - ease(progress). Older MotionText
// name used by existing scenarios (manifest: plugins_manifests/fadeOut@1.0.0.json). Its end
// state (invisible) is the point, so the value that sticks after the window is the right one.
const NAME = "fadeOut";
const DEFAULTS = { endOpacity: 0, ease: "power1.in" };

export default {
  name: NAME,
  version: "1.0.0",
  evalChannels(spec, p, _ctx) {
    const P = withDefaults(spec && spec.params, DEFAULTS);
    const end = Math.min(1, Math.max(0, num(P, "endOpacity", 0)));
    const q = ease(str(P, "ease", "power1.in"))(Math.min(1, Math.max(0, p)));
    return channels({ opacity: 1 - (1 - end) * q });
  },
};
