// Shared helpers for ecg_ray's MotionText plugins. Every plugin is a pure function of
// (params, progress): no wall clock, no Math.random, no timers, no network.
//
// How MotionText 1.5.0 (RendererV2) drives plugins, and what that means here:
//  * DOM plugins: animate(effectsRoot, params, ctx, 1) once per node (duration is always 1),
//    then the returned seek function is called with progress 0..1 on every seek while the
//    window is active, and with 0 (before) / 1 (after) on every seek once initialized but
//    outside the window. A plugin is only initialized the first time a seek lands inside its
//    window, so the state "never initialized" must look like the state at progress 1 for a
//    seek order not to matter: every plugin here draws nothing at all at progress 1 unless its
//    whole point is a lasting change (cwi-color keeps its colour).
//  * Several DOM plugins share one effectsRoot. Each plugin owns a *layer* (pure data:
//    styles per character / word / the root, plus extra nodes); after any layer changes the
//    whole effectsRoot is rebuilt from the original text and all layers, composed in a fixed
//    order (layer name), so the DOM never depends on which plugin ran first or on the
//    progress values applied before. When every layer is neutral the root goes back to the
//    renderer's plain text node and original style attribute, i.e. exactly the DOM of a
//    node whose plugins were never initialized.
//  * Channel plugins: evalChannels(spec, progress, ctx) returns {tx, ty, sx, sy, rot, opacity,
//    filter}; the renderer writes them as --mtx-* CSS variables on the base wrapper and never
//    resets a variable that is not returned, so a channel plugin must return the same keys on
//    every call. Once its window is over it is no longer called and its last values stay;
//    hybrid plugins reset their own variables from their DOM half at progress 0/1 (see
//    resetChannels), pure channel plugins cannot.
//  * Params are NOT merged with the manifest defaults by the renderer: withDefaults() below.
//  * Seconds in params: the renderer hides the real window length, so a parameter in seconds
//    is read in "window units" (the window counts as one nominal second). A staggered
//    schedule that overruns the window is compressed to fit it (staggerProgress); one that is
//    shorter finishes early and the text then rests in its final state.

// Deterministic pseudo-random value in [0, 1) from any number of integer/string keys.
export function hashRandom(...keys) {
  let h = 0x811c9dc5;
  for (const k of keys) {
    const s = String(k);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0xff;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

export function clamp01(x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

export function clamp(x, lo, hi) { return x < lo ? lo : x > hi ? hi : x; }

export function num(params, key, fallback) {
  const v = params == null ? undefined : params[key];
  const n = typeof v === "string" ? parseFloat(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : fallback;
}

export function bool(params, key, fallback) {
  const v = params == null ? undefined : params[key];
  if (v === "true") return true;
  if (v === "false") return false;
  return typeof v === "boolean" ? v : fallback;
}

export function str(params, key, fallback) {
  const v = params == null ? undefined : params[key];
  return typeof v === "string" ? v : fallback;
}

// A nested params object (e.g. cwi-loud's {pulse: {scale, lift}}); {} when absent or not an object.
export function obj(params, key) {
  const v = params == null ? undefined : params[key];
  return v && typeof v === "object" && !Array.isArray(v) ? v : {};
}

// Manifest defaults under the scenario's params (the renderer passes params unmerged).
export function withDefaults(params, defaults) {
  const out = { ...defaults };
  if (params && typeof params === "object") {
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
}

export function ease(name, fallback = "power2.out") {
  const g = window.gsap;
  let f = null;
  if (g && g.parseEase) {
    try { f = g.parseEase(name); } catch (_e) { f = null; }
    if (typeof f !== "function") { try { f = g.parseEase(fallback); } catch (_e) { f = null; } }
  }
  return typeof f === "function" ? f : (t) => t;
}

export function smoothstep(x) { x = clamp01(x); return x * x * (3 - 2 * x); }

// 0 at p<=0 and p>=1, rising/falling smoothly over `edge` at both ends, 1 in between:
// the envelope of the looping effects, so they are exactly neutral outside their window.
export function envelope(p, edge = 0.05) {
  if (p <= 0 || p >= 1) return 0;
  return smoothstep(p / edge) * smoothstep((1 - p) / edge);
}

// Smooth deterministic noise in [0, 1]: hashRandom at integer points, cosine-interpolated.
export function valueNoise(x, ...keys) {
  const i = Math.floor(x);
  const f = x - i;
  const a = hashRandom(...keys, i);
  const b = hashRandom(...keys, i + 1);
  const t = (1 - Math.cos(Math.PI * f)) / 2;
  return a + (b - a) * t;
}

// Number -> short, stable CSS text (no 1e-16 noise, no "-0").
export function fmt(x, digits = 4) {
  const m = Math.pow(10, digits);
  const r = Math.round(x * m) / m;
  return String(Object.is(r, -0) ? 0 : r);
}

// ---------------------------------------------------------------------------------------
// Colours

export function parseColor(c) {
  if (typeof c !== "string") return null;
  const s = c.trim();
  let m = s.match(/^#([0-9a-f]{3,8})$/i);
  if (m) {
    const h = m[1];
    if (h.length === 3 || h.length === 4) {
      const v = h.split("").map((x) => parseInt(x + x, 16));
      return { r: v[0], g: v[1], b: v[2], a: h.length === 4 ? v[3] / 255 : 1 };
    }
    if (h.length === 6 || h.length === 8) {
      return {
        r: parseInt(h.slice(0, 2), 16), g: parseInt(h.slice(2, 4), 16), b: parseInt(h.slice(4, 6), 16),
        a: h.length === 8 ? parseInt(h.slice(6, 8), 16) / 255 : 1,
      };
    }
    return null;
  }
  m = s.match(/^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$/i);
  if (m) {
    let a = 1;
    if (m[4] !== undefined) a = m[4].endsWith("%") ? parseFloat(m[4]) / 100 : parseFloat(m[4]);
    return { r: +m[1], g: +m[2], b: +m[3], a };
  }
  return null;
}

export function rgba(c, alpha = 1) {
  const a = clamp01((c.a == null ? 1 : c.a) * alpha);
  return `rgba(${Math.round(c.r)}, ${Math.round(c.g)}, ${Math.round(c.b)}, ${fmt(a, 3)})`;
}

export function mixColor(a, b, t) {
  t = clamp01(t);
  return {
    r: a.r + (b.r - a.r) * t, g: a.g + (b.g - a.g) * t, b: a.b + (b.b - a.b) * t,
    a: (a.a == null ? 1 : a.a) + ((b.a == null ? 1 : b.a) - (a.a == null ? 1 : a.a)) * t,
  };
}

// A colour string safe to put in a style attribute: parsed and re-printed, or null.
export function safeColor(c) {
  const p = parseColor(c);
  return p ? rgba(p) : null;
}

// cwi-* colour rule: params.color (when valid) > params.palette[params.speaker] > fallback.
export function speakerColor(params, fallback = null) {
  const direct = parseColor(str(params, "color", ""));
  if (direct) return direct;
  const speaker = str(params, "speaker", "");
  const palette = obj(params, "palette");
  if (speaker && Object.prototype.hasOwnProperty.call(palette, speaker)) {
    const entry = palette[speaker];
    const c = parseColor(typeof entry === "string" ? entry : entry && typeof entry === "object" ? entry.color : null);
    if (c) return c;
  }
  return fallback ? parseColor(fallback) : null;
}

// The colour the text has without any plugin (read from the renderer's base wrapper, which
// no plugin here ever styles).
export function baseColorOf(el) {
  const host = (el.closest && el.closest(".mtx-base-wrapper")) || el.parentElement || el;
  try {
    return parseColor(getComputedStyle(host).color) || { r: 255, g: 255, b: 255, a: 1 };
  } catch (_e) {
    return { r: 255, g: 255, b: 255, a: 1 };
  }
}

// ---------------------------------------------------------------------------------------
// Text splitting

function segmentText(text) {
  if (typeof Intl !== "undefined" && Intl.Segmenter) {
    return Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text), (s) => s.segment);
  }
  return Array.from(text);
}

const WS = /^\s+$/u;
export function isSpace(g) { return WS.test(g); }

// Split an element's text into one span per grapheme (Korean syllables and emoji stay whole).
// Text only ever goes through textContent: caption text is never parsed as HTML.
// (Kept for compatibility; the plugins use the layer system below.)
export function splitGraphemes(el) {
  const text = el.textContent || "";
  const parts = segmentText(text);
  el.textContent = "";
  const spans = [];
  for (const ch of parts) {
    const span = document.createElement("span");
    span.textContent = ch;
    span.style.display = "inline-block";
    span.style.whiteSpace = "pre";
    span.dataset.ecgChar = "";
    el.appendChild(span);
    spans.push(span);
  }
  return { spans, text };
}

export function restoreText(el, text) {
  el.textContent = text;
}

// Progress of item i of n in a staggered animation that spans the whole [0, 1] window:
// item i starts at i*stagger and lasts dur (both in units of the window), scaled to fit.
export function staggerProgress(p, i, n, stagger, dur) {
  const total = stagger * Math.max(0, n - 1) + dur;
  const scale = total > 1 ? 1 / total : 1;
  const start = i * stagger * scale;
  const len = dur * scale;
  return clamp01((p - start) / (len > 0 ? len : 1e-9));
}

// ---------------------------------------------------------------------------------------
// Layers: per-effectsRoot shared state, rebuilt deterministically on every change.

const ROOTS = new WeakMap();

function rootState(el) {
  let st = ROOTS.get(el);
  if (st) return st;
  const text = el.textContent || "";
  const graphemes = segmentText(text);
  const letters = []; // grapheme indices of the non-space graphemes
  const letterOf = new Array(graphemes.length).fill(-1);
  const words = []; // {start, end} grapheme ranges of the non-space runs
  const wordOf = new Array(graphemes.length).fill(-1);
  for (let i = 0; i < graphemes.length;) {
    if (isSpace(graphemes[i])) { i++; continue; }
    let j = i;
    while (j < graphemes.length && !isSpace(graphemes[j])) {
      letterOf[j] = letters.length;
      letters.push(j);
      wordOf[j] = words.length;
      j++;
    }
    words.push({ start: i, end: j });
    i = j;
  }
  st = {
    el, text, graphemes, letters, letterOf, words, wordOf,
    baseStyle: el.getAttribute("style"),
    layers: new Map(),
    split: null,
    plainNode: null,
  };
  ROOTS.set(el, st);
  return st;
}

// A plugin's drawing on one effectsRoot. Call begin(), describe the frame, then commit().
class Layer {
  constructor(st, name) {
    this.st = st;
    this.name = name;
    this.units = new Map(); // "c<i>" (grapheme i) / "w<j>" (word j) -> style object
    this.rootStyle = null;
    // {node, at, mirror}: at = "before" | "after" | grapheme index to insert before; a mirror
    // node gets a deep copy of the composed text content on every render, so copies of the
    // text (glitch, flames) follow what the other layers do to the letters.
    this.extras = [];
  }
  get text() { return this.st.text; }
  get graphemes() { return this.st.graphemes; }
  get letters() { return this.st.letters; } // grapheme indices of letters (non-space)
  get words() { return this.st.words; }
  begin() { this.units.clear(); this.rootStyle = null; this.extras.length = 0; return this; }
  // Style objects: {transform, opacity, filter, textShadow, transformOrigin, color, visibility,
  // clipPath, backfaceVisibility}. transform/filter/textShadow concatenate across layers,
  // opacity multiplies, the rest: the last layer (by name) wins.
  char(i, style) { if (style) this.units.set("c" + i, style); return this; }
  word(j, style) { if (style) this.units.set("w" + j, style); return this; }
  root(style) { if (style) this.rootStyle = style; return this; }
  extra(node, at = "after") { this.extras.push({ node, at, mirror: false }); return this; }
  mirror(node, at = "before") { this.extras.push({ node, at, mirror: true }); return this; }
  neutral() { return this.units.size === 0 && !this.rootStyle && this.extras.length === 0; }
  // Redraw the root. Skipped when this layer describes exactly what it described at its last
  // commit: every change of any layer is committed, so the DOM already shows this state.
  commit() {
    const sig = this.signature();
    if (sig === this.lastSig) return;
    this.lastSig = sig;
    render(this.st);
  }
  signature() {
    let s = "";
    for (const [k, v] of this.units) s += k + JSON.stringify(v);
    s += "|" + (this.rootStyle ? JSON.stringify(this.rootStyle) : "") + "|";
    for (const x of this.extras) {
      s += nodeId(x.node) + "@" + x.at + (x.mirror ? "m" : "") + "=" + (x.node.getAttribute ? x.node.getAttribute("style") : "") + ";";
    }
    return s;
  }
}

const NODE_IDS = new WeakMap();
let nextNodeId = 1;
function nodeId(node) {
  let id = NODE_IDS.get(node);
  if (!id) { id = nextNodeId++; NODE_IDS.set(node, id); }
  return id;
}

export function useLayer(el, name) {
  const st = rootState(el);
  let layer = st.layers.get(name);
  if (!layer) { layer = new Layer(st, name); st.layers.set(name, layer); }
  layer.lastSig = null; // a (re-)initialized plugin always draws its first frame
  return layer;
}

// A plugin's cleanup: drop its layer and redraw (plain text when no layer is left).
export function dropLayer(el, name) {
  const st = el && ROOTS.get(el);
  if (!st) return;
  if (!st.layers.delete(name)) return;
  render(st);
}

// A hidden marker element. RendererV2 re-initializes "glow", "flames", "glitch" and "magnetic"
// on every seek unless it finds [data-glow] / img[data-flames] / [data-glitch] /
// [data-magnetic] inside the effects root; those plugins add one while they draw anything.
export function marker(attr, tag = "span") {
  const m = document.createElement(tag);
  m.setAttribute(attr, "");
  if (tag === "img") m.setAttribute("alt", "");
  m.setAttribute("style", "display: none;");
  return m;
}

const LAST_KEYS = [
  ["color", "color"],
  ["visibility", "visibility"],
  ["clipPath", "clip-path"],
  ["backfaceVisibility", "backface-visibility"],
];

function composeCss(styles) {
  let origin = null;
  const tf = [], fl = [], ts = [];
  let op = 1;
  const last = {};
  for (const s of styles) {
    if (!s) continue;
    if (s.transformOrigin) origin = s.transformOrigin;
    if (s.transform) tf.push(s.transform);
    if (typeof s.opacity === "number" && Number.isFinite(s.opacity)) op *= clamp01(s.opacity);
    if (s.filter) fl.push(s.filter);
    if (s.textShadow) ts.push(s.textShadow);
    for (const [k] of LAST_KEYS) if (s[k] != null) last[k] = s[k];
  }
  let css = "";
  if (origin) css += ` transform-origin: ${origin};`;
  if (tf.length) css += ` transform: ${tf.join(" ")};`;
  if (op < 1) css += ` opacity: ${fmt(op)};`;
  if (fl.length) css += ` filter: ${fl.join(" ")};`;
  if (ts.length) css += ` text-shadow: ${ts.join(", ")};`;
  for (const [k, prop] of LAST_KEYS) if (last[k] != null) css += ` ${prop}: ${last[k]};`;
  return css;
}

function setStyle(node, css) {
  if (css == null || css === "") {
    if (node.hasAttribute("style")) node.removeAttribute("style");
  } else if (node.getAttribute("style") !== css) {
    node.setAttribute("style", css);
  }
}

const CHAR_BASE = "display: inline-block; white-space: pre;";
const WORD_BASE = "display: inline-block; white-space: nowrap;";

function ensureSplit(st) {
  if (st.split) return st.split;
  const g = st.graphemes;
  const chars = new Array(g.length).fill(null);
  const tokens = [];
  for (let i = 0; i < g.length;) {
    if (isSpace(g[i])) {
      let j = i, s = "";
      while (j < g.length && isSpace(g[j])) s += g[j++];
      tokens.push({ ws: true, node: document.createTextNode(s), start: i, end: j });
      i = j;
    } else {
      const w = st.wordOf[i];
      const span = document.createElement("span");
      let j = i;
      while (j < g.length && !isSpace(g[j])) {
        const c = document.createElement("span");
        c.textContent = g[j];
        chars[j] = c;
        j++;
      }
      tokens.push({ ws: false, node: span, start: i, end: j, word: w });
      i = j;
    }
  }
  st.split = { chars, tokens };
  return st.split;
}

function render(st) {
  const el = st.el;
  const layers = Array.from(st.layers.values()).filter((l) => !l.neutral());
  layers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (layers.length === 0) {
    setStyle(el, st.baseStyle);
    if (el.childNodes.length !== 1 || el.firstChild.nodeType !== 3 || el.firstChild.data !== st.text) {
      el.textContent = st.text;
    }
    return;
  }
  const n = st.graphemes.length;
  const rootCss = composeCss(layers.map((l) => l.rootStyle));
  setStyle(el, rootCss ? (st.baseStyle ? st.baseStyle + rootCss : rootCss.trim()) : st.baseStyle);

  const before = [], after = [], mirrors = [];
  const at = new Map();
  for (const l of layers) {
    for (const x of l.extras) {
      if (x.mirror) mirrors.push(x.node);
      if (x.at === "before") before.push(x.node);
      else if (x.at === "after" || typeof x.at !== "number" || x.at >= n) after.push(x.node);
      else {
        const k = Math.max(0, Math.floor(x.at));
        if (!at.has(k)) at.set(k, []);
        at.get(k).push(x.node);
      }
    }
  }
  const needSplit = at.size > 0 || layers.some((l) => l.units.size > 0);
  const content = [];
  if (!needSplit) {
    if (!st.plainNode) st.plainNode = document.createTextNode(st.text);
    content.push(st.plainNode);
  } else {
    const { chars, tokens } = ensureSplit(st);
    for (const tok of tokens) {
      for (let k = tok.start; k < (tok.ws ? tok.end : tok.start + 1); k++) if (at.has(k)) content.push(...at.get(k));
      if (tok.ws) { content.push(tok.node); continue; }
      const kids = [];
      for (let i = tok.start; i < tok.end; i++) {
        if (i > tok.start && at.has(i)) kids.push(...at.get(i));
        const css = composeCss(layers.map((l) => l.units.get("c" + i)));
        setStyle(chars[i], CHAR_BASE + css);
        kids.push(chars[i]);
      }
      tok.node.replaceChildren(...kids);
      setStyle(tok.node, WORD_BASE + composeCss(layers.map((l) => l.units.get("w" + tok.word))));
      content.push(tok.node);
    }
  }
  for (const m of mirrors) m.replaceChildren(...content.map((c) => c.cloneNode(true)));
  el.replaceChildren(...before, ...content, ...after);
}

// ---------------------------------------------------------------------------------------
// Channels

const CHANNEL_NEUTRAL = { tx: "0px", ty: "0px", sx: "1", sy: "1", rot: "0deg", opacity: "1" };

// Hybrid plugins call this from their DOM half at progress 0/1: the renderer stops calling
// evalChannels outside the window and would otherwise leave the last in-window value of
// these --mtx-* variables on the base wrapper. Values evaluated by active plugins in the same
// seek are applied after the chain loop, so this never hides another plugin's channels.
export function resetChannels(el, keys) {
  const bw = el && el.closest ? el.closest(".mtx-base-wrapper") : null;
  if (!bw) return;
  for (const k of keys) {
    const v = CHANNEL_NEUTRAL[k];
    if (v !== undefined && bw.style.getPropertyValue(`--mtx-${k}`) !== v) bw.style.setProperty(`--mtx-${k}`, v);
  }
}

// Round channel values so the CSS variables carry stable text.
export function channels(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) out[k] = typeof v === "number" ? Number(fmt(v, 3)) : v;
  return out;
}
