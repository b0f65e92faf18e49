// The caption page: MotionText driven by explicit seeks only (no media, no ticker),
// so every frame is a pure function of the scenario and the frame time.
import { MotionTextRenderer, registerExternalPlugin } from "/vendor/motiontext-renderer.js";
import { PLUGINS } from "/plugins/index.js";

// Seeded PRNG in place of Math.random: third-party code that draws random numbers still
// renders the same frames in every process (our own plugins hash instead of drawing).
function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
Math.random = mulberry32(0x5eed);

const gsap = window.gsap;
// Wall-clock tweens must never advance on their own: GSAP only moves when we tell it.
gsap.ticker.remove(gsap.updateRoot);
gsap.ticker.lagSmoothing(0);
// Nor may the ticker run at all: GSAP wakes it (a requestAnimationFrame loop) whenever an
// animation is created, and only the updateRoot removed above would put it back to sleep. Awake,
// it asked Chromium for a frame 60 times a second for nothing: an idle page cost 80 ms of CPU a
// second (renderer and GPU process), and every capture paid for the frames in between.
const wakeTicker = gsap.ticker.wake;
gsap.ticker.wake = function () {
  wakeTicker.call(gsap.ticker);  // its first call also finishes GSAP's set-up
  gsap.ticker.sleep();
};
gsap.ticker.sleep();

const warnings = [];
const origWarn = console.warn.bind(console);
console.warn = (...args) => {
  warnings.push(args.map((a) => String(a)).join(" ").slice(0, 500));
  origWarn(...args);
};

for (const p of PLUGINS) {
  registerExternalPlugin({
    name: p.manifest.name,
    version: p.manifest.version,
    module: p.module,
    baseUrl: "/plugins/",
    manifest: p.manifest,
  });
  for (const alias of p.aliases || []) {
    registerExternalPlugin({
      name: alias,
      version: p.manifest.version,
      module: p.module,
      baseUrl: "/plugins/",
      manifest: { ...p.manifest, name: alias },
    });
  }
}

// motiontext-renderer 1.5.0 draws no image node: it makes the node an <img>, moves the picture
// into an <img> inside the effects wrapper, appends that wrapper INSIDE the node's <img> (a void
// element: its children are never drawn) and blanks the node's own src (a broken-image icon).
// Here the node is a box (<div class="mtx-image">) instead, holding the wrapper and the picture:
// the picture fills the node's layout box, and the effects (which move the wrapper) apply to it.
function patchImageNodes(renderer) {
  const proto = Object.getPrototypeOf(renderer);
  if (!proto || proto.__ecgImageNodes || typeof proto.createOriginalElement !== "function") return;
  const createOriginal = proto.createOriginalElement;
  const createElement = proto.createElement;
  proto.createOriginalElement = function (node) {
    if (!node || node.eType !== "image") return createOriginal.call(this, node);
    const el = document.createElement("div");
    el.className = "mtx-image";
    // read (and blanked) by moveContentToEffectsRoot, which builds the drawn <img> from them
    el.src = typeof node.src === "string" ? node.src : "";
    el.alt = typeof node.alt === "string" ? node.alt : "";
    return el;
  };
  proto.createElement = function (node) {
    const el = createElement.call(this, node);
    if (node && node.eType === "image") {
      // With a layout size (fractions of the stage, set on the node's box) the picture fills
      // that box; without one it keeps its own pixel size.
      const size = node.layout && node.layout.size;
      const sized = !!size && (typeof size.width === "number" || typeof size.height === "number");
      const wrapper = el.querySelector(":scope > .mtx-base-wrapper");
      if (wrapper && sized) Object.assign(wrapper.style, { display: "block", width: "100%", height: "100%" });
      const img = el.querySelector("img");
      if (img) {
        // Drawn in the very frame it appears: an image Chromium may decode asynchronously
        // ("auto") is at times left out of the next paint (about 1 capture in 12 here).
        img.decoding = "sync";
        img.style.display = "block";
        if (!sized) Object.assign(img.style, { width: "auto", height: "auto" });
      }
    }
    return el;
  };
  proto.__ecgImageNodes = true;
}

// motiontext-renderer 1.5.0 copies a fixed list of style fields onto a text node (applyTextStyle:
// color, fonts, size, stroke, shadow, align, whiteSpace) and drops the rest. The platform's editor
// also sets fontStyle (italic) and textDecoration (underline) and shows them: they are applied
// here, after the renderer's own styling, from the node's style over its track's defaultStyle
// (the same merge the renderer makes). Values go through the CSSOM, which ignores invalid ones.
const EXTRA_TEXT_STYLE = ["fontStyle", "textDecoration"];
function patchTextStyles(renderer) {
  const proto = Object.getPrototypeOf(renderer);
  if (!proto || proto.__ecgTextStyles || typeof proto.applyBaseStyle !== "function") return;
  const applyBaseStyle = proto.applyBaseStyle;
  proto.applyBaseStyle = function (element, node, track) {
    applyBaseStyle.call(this, element, node, track);
    const obj = (v) => (v && typeof v === "object" ? v : {});
    const merged = { ...obj(track && track.defaultStyle), ...obj(node && node.style) };
    for (const key of EXTRA_TEXT_STYLE) {
      const v = merged[key];
      if (typeof v === "string" && v) element.style[key] = v;
    }
    if (element.style.textDecoration) element.classList.add("ecg-deco");
  };
  proto.__ecgTextStyles = true;
}

// The page holds one or more lanes: each its own MotionText renderer on its own stage, seeked
// on its own run of frames. A segment walks several runs at once and captures the changed
// overlays of all lanes in one screenshot (a "sheet"): a capture has a large fixed cost (a
// forced frame through every Chromium process), so one capture for N lanes costs far less
// than N captures. Each lane sits in a window (overflow clip) that arrange() moves so that
// the lanes' changed boxes are stacked at the page's top-left. Lane 0 (#stage, in page.html)
// is the whole frame at the page origin unless arranged, as a single-lane page needs.
const lanes = [];
function makeLane(i) {
  let win, holder, stage;
  if (i === 0) {
    stage = document.getElementById("stage");
    holder = stage.parentElement;
    win = holder.parentElement;
  } else {
    win = document.createElement("div");
    win.className = "ecg-win";
    holder = document.createElement("div");
    holder.className = "ecg-holder";
    stage = document.createElement("div");
    stage.className = "ecg-stage";
    stage.id = "stage-" + i;
    holder.appendChild(stage);
    win.appendChild(holder);
    document.body.appendChild(win);
  }
  return { i, win, holder, stage, mt: null, lastHash: null, unpainted: [], seen: new WeakSet() };
}
lanes.push(makeLane(0));

// <img> elements created since the last frame that was reported changed. A frame that shows a
// picture for the first time is answered only once the picture is decoded and has been through
// a paint: capturing sooner left it out now and then (1 capture in 12 with decoding "auto", 1
// in 100 with "sync"), and the next frames, unchanged, would reuse that capture.
function noteImages(lane) {
  for (const img of lane.stage.getElementsByTagName("img")) {
    if (!lane.seen.has(img)) { lane.seen.add(img); lane.unpainted.push(img); }
  }
}
function presented(result, ls) {
  const imgs = [];
  for (const lane of ls) imgs.push(...lane.unpainted.splice(0));
  if (!imgs.length) return result;
  return Promise.all(imgs.map((i) => i.decode().catch(() => {})))
    .then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
    .then(() => result);
}

const keptImages = [];  // the loaded scenario's define images, decoded (see load)

// FNV-1a over the rendered DOM: the DOM carries the whole visual state, so an unchanged
// hash means an unchanged overlay and the capture can be skipped.
function fnv1a(str) {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16);
}

function visibleBox(lane) {
  // Union of the boxes of every drawn element (transforms included), in stage coordinates.
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const all = lane.stage.querySelectorAll("*");
  for (const el of all) {
    const cs = getComputedStyle(el);
    if (cs.display === "none" || cs.visibility === "hidden" || parseFloat(cs.opacity) === 0) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) continue;
    // Elements without any drawn content of their own (pure layout wrappers) still have boxes;
    // counting them only makes the clip larger, never wrong.
    x0 = Math.min(x0, r.left); y0 = Math.min(y0, r.top);
    x1 = Math.max(x1, r.right); y1 = Math.max(y1, r.bottom);
  }
  if (x0 === Infinity) return null;
  const o = lane.stage.getBoundingClientRect();  // the lane's window may be moved (arrange)
  return [x0 - o.left, y0 - o.top, x1 - x0, y1 - y0];
}

function seekLane(lane, t, force) {
  const t0 = performance.now();
  lane.mt.seek(t);
  gsap.updateRoot(t);
  const t1 = performance.now();
  const h = fnv1a(lane.stage.innerHTML);
  const t2 = performance.now();
  const unchanged = h === lane.lastHash && !force;
  lane.lastHash = h;
  const box = unchanged ? null : visibleBox(lane);
  if (!unchanged) noteImages(lane);
  const tm = window.__ecg.timing;
  tm.seek += t1 - t0; tm.hash += t2 - t1; tm.box += performance.now() - t2; tm.calls += 1;
  return [h, box, unchanged];
}

// Seek one lane through times in order, stopping at the first frame whose drawing changed:
// [index, box] (index === times.length when nothing changed).
function advanceLane(lane, times, forceFirst) {
  for (let i = 0; i < times.length; i++) {
    const [, box, unchanged] = seekLane(lane, times[i], forceFirst && i === 0);
    if (!unchanged) return [i, box];
  }
  return [times.length, null];
}

window.__ecg = {
  ready: true,
  warnings,
  async load(scenario, opts) {
    const want = Math.max(1, (opts.lanes | 0) || 1);
    for (const lane of lanes) {
      if (lane.mt) { try { lane.mt.dispose(); } catch (_e) {} }
      lane.stage.textContent = "";
      lane.mt = null;
    }
    while (lanes.length > want) lanes.pop().win.remove();
    while (lanes.length < want) lanes.push(makeLane(lanes.length));
    warnings.length = 0;
    keptImages.length = 0;
    // The holder (the stage's parent) keeps no size of its own: MotionText fits the stage into
    // its parent's box when that has one (letterboxing it to the scenario's aspect), and the
    // stage must stay exactly the frame.
    for (const lane of lanes) {
      lane.stage.style.width = opts.width + "px";
      lane.stage.style.height = opts.height + "px";
      lane.lastHash = null;
      lane.unpainted.length = 0;
      lane.seen = new WeakSet();
    }
    window.__ecg.size = [opts.width, opts.height];
    window.__ecg.arrange([]);
    let loaded = {};
    for (const lane of lanes) {
      lane.mt = new MotionTextRenderer(lane.stage, { fps: opts.fps, snapToFrame: false });
      if (lane.mt.renderer) { patchImageNodes(lane.mt.renderer); patchTextStyles(lane.mt.renderer); }
      // loadConfig awaits the define assets: each font's FontFace.load() (then added to
      // document.fonts under the define key) and each image's preload.
      await lane.mt.loadConfig(scenario);
      if (lane.i !== 0) continue;
      const am = lane.mt.assetManager;
      const images = am ? am.getContext().images : new Map();
      // Decode every define image now and keep it referenced while this scenario is loaded: an
      // <img> the renderer creates at a seek then finds the decoded image in the document's
      // memory cache and is complete at once, so the first frame that shows it already draws it
      // (in segment 0 and in segment N alike).
      for (const url of images.values()) {
        const img = new Image();
        img.src = url;
        try { await img.decode(); keptImages.push(img); } catch (_e) { /* reported below: not loaded */ }
      }
      if (document.fonts) await document.fonts.ready;
      loaded = am ? { fonts: am.getAllAssetKeys("font"), images: am.getAllAssetKeys("image") } : {};
      if (loaded.images) loaded.images = loaded.images.filter((k) => keptImages.some((i) => i.src === images.get(k)));
    }
    if (document.fonts) await document.fonts.ready;
    window.__ecg.lastHash = null;
    return { warnings: warnings.slice(), assets: loaded };
  },
  // Milliseconds spent in each part of seek(), for benchmarks.
  timing: { seek: 0, hash: 0, box: 0, calls: 0 },
  lastHash: null,
  size: [0, 0],
  // Seek lane 0 to t (seconds) and describe what is drawn: [hash, box, unchanged]. The box
  // (null when nothing shows) is measured only when the DOM changed (or when forced): layout is
  // the costly part.
  seek(t, force) {
    const r = seekLane(lanes[0], t, force);
    window.__ecg.lastHash = lanes[0].lastHash;
    return r[2] ? r : presented(r, [lanes[0]]);
  },
  // Seek lane 0 through times in order and stop at the first frame whose drawing changed:
  // [index, box] (index === times.length when nothing changed). One round trip covers a
  // whole static stretch; the page is left at the changed frame, ready to be captured.
  advance(times, forceFirst) {
    const r = advanceLane(lanes[0], times, forceFirst);
    return r[0] < times.length ? presented(r, [lanes[0]]) : r;
  },
  // advance() for several lanes in one round trip: specs [[lane, times, forceFirst], ...] ->
  // [[index, box], ...] in the same order.
  advanceLanes(specs) {
    const out = [], changed = [];
    for (const [i, times, force] of specs) {
      const r = advanceLane(lanes[i], times, force);
      out.push(r);
      if (r[0] < times.length) changed.push(lanes[i]);
    }
    return presented(out, changed);
  },
  // Pre-roll: seek through frame times without reporting, to settle plugin state.
  preroll(times, lane) {
    const ln = lanes[lane | 0];
    for (const t of times) { ln.mt.seek(t); gsap.updateRoot(t); }
    noteImages(ln);
    ln.lastHash = null;
    if (!lane) window.__ecg.lastHash = null;
    return times.length;
  },
  // Show the rectangle [x, x + w) x [y, y + h) of each listed lane's stage at page (0, top):
  // places [[lane, x, y, w, h, top], ...]; every other lane is clipped away entirely. With no
  // places, lane 0 shows its whole stage at the origin again.
  arrange(places) {
    const [W, H] = window.__ecg.size;
    const shown = new Set();
    for (const [i, x, y, w, h, top] of places) {
      const ln = lanes[i];
      shown.add(ln);
      Object.assign(ln.win.style, { top: top + "px", width: w + "px", height: h + "px" });
      Object.assign(ln.holder.style, { left: -x + "px", top: -y + "px" });
    }
    for (const ln of lanes) {
      if (shown.has(ln)) continue;
      const whole = !places.length && ln.i === 0;
      Object.assign(ln.win.style, { top: "0px", width: (whole ? W : 0) + "px", height: (whole ? H : 0) + "px" });
      Object.assign(ln.holder.style, { left: "0px", top: "0px" });
    }
    return true;
  },
};
