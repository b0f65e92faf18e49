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

// <img> elements created since the last frame that was reported changed. A frame that shows a
// picture for the first time is answered only once the picture is decoded and has been through
// a paint: capturing sooner left it out now and then (1 capture in 12 with decoding "auto", 1
// in 100 with "sync"), and the next frames, unchanged, would reuse that capture.
const unpainted = [];
const seenImages = new WeakSet();
function noteImages() {
  for (const img of stage.getElementsByTagName("img")) {
    if (!seenImages.has(img)) { seenImages.add(img); unpainted.push(img); }
  }
}
function presented(result) {
  if (!unpainted.length) return result;
  const imgs = unpainted.splice(0);
  return Promise.all(imgs.map((i) => i.decode().catch(() => {})))
    .then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
    .then(() => result);
}

const stage = document.getElementById("stage");
let mt = null;
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

function visibleBox() {
  // Union of the boxes of every drawn element (transforms included).
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const all = stage.querySelectorAll("*");
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
  return [x0, y0, x1 - x0, y1 - y0];
}

window.__ecg = {
  ready: true,
  warnings,
  async load(scenario, opts) {
    stage.style.width = opts.width + "px";
    stage.style.height = opts.height + "px";
    if (mt) { try { mt.dispose(); } catch (_e) {} stage.textContent = ""; }
    warnings.length = 0;
    mt = new MotionTextRenderer(stage, { fps: opts.fps, snapToFrame: false });
    if (mt.renderer) patchImageNodes(mt.renderer);
    keptImages.length = 0;
    unpainted.length = 0;
    // loadConfig awaits the define assets: each font's FontFace.load() (then added to
    // document.fonts under the define key) and each image's preload.
    await mt.loadConfig(scenario);
    window.__ecg.lastHash = null;
    const am = mt.assetManager;
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
    const loaded = am ? { fonts: am.getAllAssetKeys("font"), images: am.getAllAssetKeys("image") } : {};
    if (loaded.images) loaded.images = loaded.images.filter((k) => keptImages.some((i) => i.src === images.get(k)));
    return { warnings: warnings.slice(), assets: loaded };
  },
  // Milliseconds spent in each part of seek(), for benchmarks.
  timing: { seek: 0, hash: 0, box: 0, calls: 0 },
  lastHash: null,
  // Seek to t (seconds) and describe what is drawn: [hash, box, unchanged]. The box (null when
  // nothing shows) is measured only when the DOM changed (or when forced): layout is the
  // costly part.
  seek(t, force) {
    const r = window.__ecg._seek(t, force);
    return r[2] ? r : presented(r);
  },
  _seek(t, force) {
    const t0 = performance.now();
    mt.seek(t);
    gsap.updateRoot(t);
    const t1 = performance.now();
    const h = fnv1a(stage.innerHTML);
    const t2 = performance.now();
    const ecg = window.__ecg;
    const unchanged = h === ecg.lastHash && !force;
    ecg.lastHash = h;
    const box = unchanged ? null : visibleBox();
    if (!unchanged) noteImages();
    const tm = ecg.timing;
    tm.seek += t1 - t0; tm.hash += t2 - t1; tm.box += performance.now() - t2; tm.calls += 1;
    return [h, box, unchanged];
  },
  // Seek through times in order and stop at the first frame whose drawing changed:
  // [index, box] (index === times.length when nothing changed). One round trip covers a
  // whole static stretch; the page is left at the changed frame, ready to be captured.
  advance(times, forceFirst) {
    for (let i = 0; i < times.length; i++) {
      const [, box, unchanged] = window.__ecg._seek(times[i], forceFirst && i === 0);
      if (!unchanged) return presented([i, box]);
    }
    return [times.length, null];
  },
  // Pre-roll: seek through frame times without reporting, to settle plugin state.
  preroll(times) {
    for (const t of times) { mt.seek(t); gsap.updateRoot(t); }
    noteImages();
    window.__ecg.lastHash = null;
    return times.length;
  },
};
