// The jobs page: polls the API every second and shows the queue, recent jobs and the cluster.
//
// Everything shown comes from the API and may be hostile (job errors quote URLs and servers'
// answers, warnings quote option names): it is written with textContent and attributes only,
// never as HTML. The API key is kept in sessionStorage (this tab only, gone when it closes).
"use strict";

(() => {
  const KEY_ITEM = "ecg_ray.api_key";
  const POLL_MS = 1000;
  const LIMIT = 100;
  const STATES = ["queued", "processing", "completed", "failed", "cancelled"];
  const pageQuery = new URLSearchParams(window.location.search);
  const forTenant = pageQuery.get("tenant"); // admin keys: one tenant's jobs (?tenant= on the page)

  const $ = (id) => document.getElementById(id);
  const rows = new Map(); // job ref -> {tr, cells}
  let selected = null; // the ref of the job whose details are shown
  let lastSeen = new Map(); // job ref -> its latest status
  let timer = null;
  let generation = 0; // a key given or forgotten makes answers to earlier requests stale

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && typeof body.detail === "string" ? body.detail : "";
      super(detail || `HTTP ${status}`);
      this.status = status;
      this.code = body && typeof body.error_code === "string" ? body.error_code : "";
    }
  }

  function apiKey() {
    return window.sessionStorage.getItem(KEY_ITEM) || "";
  }

  async function api(path, query) {
    const url = new URL(path, document.baseURI);
    for (const [name, value] of query || []) url.searchParams.append(name, value);
    if (forTenant !== null && !url.searchParams.has("tenant")) url.searchParams.set("tenant", forTenant);
    const headers = { Accept: "application/json" };
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
    } catch (err) {
      throw new ApiError(0, { detail: `the service did not answer (${err.message})` });
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // -- small DOM helpers (text only) -----------------------------------------------------------
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function fillList(dl, pairs) {
    const nodes = [];
    for (const [term, value] of pairs) {
      if (value === undefined || value === null || value === "") continue;
      nodes.push(el("dt", term), el("dd", value));
    }
    dl.replaceChildren(...nodes);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  function when(epoch) {
    return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleString() : "";
  }

  function bytes(n) {
    if (typeof n !== "number") return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${i ? v.toFixed(1) : v} ${units[i]}`;
  }

  function refOf(job) {
    return job.tenant ? `${job.tenant}.${job.job_id}` : job.job_id;
  }

  // An http(s) link, or nothing: a download_url is the service's, but is never followed blindly.
  function safeLink(raw) {
    try {
      const url = new URL(raw, document.baseURI);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  // -- what the service says ---------------------------------------------------------------------
  function setConnection(text, bad) {
    const node = $("connection");
    node.textContent = text;
    node.classList.toggle("bad", Boolean(bad));
  }

  function showKeyPanel(message) {
    $("main").hidden = true;
    $("key-panel").hidden = false;
    $("auth-message").textContent = message;
    $("forget-key").hidden = !apiKey();
    setConnection("Needs an API key", true);
    $("key-input").focus();
  }

  function showMain() {
    $("key-panel").hidden = true;
    $("main").hidden = false;
    $("forget-key").hidden = !apiKey();
  }

  function renderQueue(q) {
    $("count-running").textContent = `${q.running.length} of ${q.max_concurrent_jobs} at once`;
    $("count-queued").textContent = `${q.queued.length} (room for ${q.max_queued_jobs})`;
    $("count-here").textContent = String((q.running_here || []).length);
    $("queue-list").replaceChildren(...q.queued.map((ref) => el("li", ref)));
    $("queue-empty").hidden = q.queued.length > 0;
    const leases = q.leases || {};
    $("running-list").replaceChildren(...q.running.map((ref) => {
      const holder = leases[ref];
      return el("li", holder ? `${ref} (${holder})` : holder === "" ? `${ref} (waiting to be taken over)` : ref);
    }));
    $("running-empty").hidden = q.running.length > 0;
    const names = Object.keys(q.cluster || {}).filter((n) => !n.startsWith("node:")).sort();
    $("resource-rows").replaceChildren(...names.map((name) => {
      const tr = el("tr");
      tr.dataset.resource = name;
      const memory = /memory/i.test(name);
      const show = (v) => (typeof v !== "number" ? "0" : memory ? bytes(v) : String(Math.round(v * 100) / 100));
      tr.append(el("td", name), el("td", show((q.available || {})[name])), el("td", show(q.cluster[name])));
      return tr;
    }));
  }

  const COLUMNS = ["job", "tenant", "state", "progress", "eta", "message", "attempt", "interruptions",
    "rendered_by", "resumed_segments", "reused_segments", "error"];

  function makeRow(ref) {
    const tr = el("tr");
    tr.dataset.ref = ref;
    tr.tabIndex = 0;
    const cells = {};
    for (const name of COLUMNS) {
      cells[name] = el("td", null, `col-${name}`);
      tr.append(cells[name]);
    }
    cells.bar = el("progress");
    cells.bar.max = 100;
    cells.percent = el("span", null, "percent");
    cells.progress.append(cells.bar, cells.percent);
    cells.errorCode = el("code", null, "error-code");
    cells.errorMessage = el("span", null, "error-message");
    cells.error.append(cells.errorCode, cells.errorMessage);
    const choose = () => select(ref);
    tr.addEventListener("click", choose);
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") choose();
    });
    return { tr, cells };
  }

  function fillRow(row, job) {
    const c = row.cells;
    const state = STATES.includes(job.state) ? job.state : "unknown";
    c.job.textContent = job.job_id;
    c.tenant.textContent = job.tenant || "–";
    c.state.textContent = job.state;
    c.state.className = `col-state state-${state}`;
    row.tr.dataset.state = state;
    const pct = Math.max(0, Math.min(100, Number(job.progress) || 0));
    c.bar.value = pct;
    c.percent.textContent = ` ${pct.toFixed(0)}%`;
    const left = job.estimated_time_remaining;
    c.eta.textContent = state === "processing" && typeof left === "number" ? duration(left)
      : state === "queued" && job.queue_position ? `#${job.queue_position} in the queue` : "";
    c.message.textContent = job.message || "";
    c.attempt.textContent = String(job.attempt);
    c.interruptions.textContent = String(job.interruptions || 0);
    c.rendered_by.textContent = job.result ? job.result.rendered_by || "" : "";
    c.resumed_segments.textContent = job.result ? String(job.result.resumed_segments || 0) : "";
    // taken from the segment cache (an earlier job rendered them): known once the job is planned
    c.reused_segments.textContent = typeof job.reused_segments === "number" && job.segments
      ? `${job.reused_segments} of ${job.segments}` : "";
    c.errorCode.textContent = job.error ? job.error.code : "";
    c.errorMessage.textContent = job.error ? ` ${job.error.message}` : "";
    row.tr.classList.toggle("selected", refOf(job) === selected);
  }

  function renderJobs(list) {
    const seen = new Map();
    const order = [];
    for (const job of list.jobs) {
      const ref = refOf(job);
      seen.set(ref, job);
      let row = rows.get(ref);
      if (!row) {
        row = makeRow(ref);
        rows.set(ref, row);
      }
      fillRow(row, job);
      order.push(row.tr);
    }
    for (const ref of [...rows.keys()]) if (!seen.has(ref)) rows.delete(ref);
    $("job-rows").replaceChildren(...order);
    $("jobs-empty").hidden = list.jobs.length > 0;
    $("jobs-more").hidden = !list.more;
    for (const [ref, job] of seen) lastSeen.set(ref, job);
    return seen;
  }

  function renderDetails(job) {
    const box = $("details");
    showPreview(job);
    if (!job) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.dataset.ref = refOf(job);
    $("detail-id").textContent = job.tenant ? `${job.job_id} (tenant ${job.tenant})` : job.job_id;
    fillList($("detail-fields"), [
      ["State", job.state],
      ["Message", job.message],
      ["Progress", `${(Number(job.progress) || 0).toFixed(1)}%`],
      ["Frames", job.frames_total ? `${job.frames_done} of ${job.frames_total}` : ""],
      ["Time left", job.state === "processing" ? duration(job.estimated_time_remaining) : ""],
      ["Queue position", job.queue_position],
      ["Attempt", job.attempt],
      ["Interruptions", job.interruptions],
    ]);
    const r = job.result;
    const link = $("detail-download");
    const href = r ? safeLink(r.download_url) : null;
    $("detail-no-output").hidden = Boolean(r);
    link.hidden = !href;
    if (href) {
      link.href = href;
      link.textContent = `Download ${r.job_id} (${bytes(r.file_size)})`;
    } else {
      link.removeAttribute("href");
    }
    // Files made beside the video (options.poster, options.webvtt), each with its own link.
    const files = r && r.files ? Object.entries(r.files) : [];
    $("detail-files").replaceChildren(...files.map(([kind, f]) => {
      const li = el("li");
      li.dataset.kind = kind;
      const fileHref = safeLink(f.download_url);
      if (fileHref) {
        const a = el("a", `Download ${kind} (${bytes(f.file_size)})`);
        a.href = fileHref;
        a.download = "";
        li.append(a);
      } else {
        li.textContent = kind;
      }
      return li;
    }));
    fillList($("detail-output"), r ? [
      ["Location", r.location],
      ["Size", bytes(r.file_size)],
      ["Duration", `${r.duration} s`],
      ["Frames", r.frames],
      ["Picture", `${r.width}×${r.height} at ${r.fps} fps`],
      ["Encoder", r.encoder],
      ["Segments", r.segments],
      ["Resumed segments", r.resumed_segments],
      ["Reused segments", `${r.reused_segments || 0} of ${r.segments} (from the segment cache)`],
      ["Rendered by", r.rendered_by],
      ["Render time", duration(r.render_seconds)],
    ] : []);
    $("detail-warnings").replaceChildren(...(r && r.warnings ? r.warnings : []).map((w) => el("li", w)));
    $("detail-error").hidden = !job.error;
    $("detail-error-code").textContent = job.error ? job.error.code : "";
    $("detail-error-message").textContent = job.error ? job.error.message : "";
    const waited = job.started_at ? job.started_at - job.created_at : null;
    const ran = job.started_at && job.finished_at ? job.finished_at - job.started_at : null;
    fillList($("detail-timings"), [
      ["Submitted", when(job.created_at)],
      ["Started", when(job.started_at)],
      ["Ended", when(job.finished_at)],
      ["Waited", duration(waited)],
      ["Ran", duration(ran)],
    ]);
  }

  // The selected job's live preview: hls.js plays its preview_url (same origin: the CSP allows
  // nothing else) from the start of what is rendered; a new job or link starts it again.
  let player = null;
  let playing = null;
  function showPreview(job) {
    const video = $("preview-video");
    const href = job && job.preview_url ? safeLink(job.preview_url) : null;
    const key = href ? `${refOf(job)} ${job.attempt}` : null;
    if (key === playing) return;
    if (player) player.destroy();
    player = null;
    playing = key;
    video.hidden = !href;
    $("preview-none").hidden = Boolean(href);
    if (!href) {
      video.removeAttribute("src");
      return;
    }
    if (typeof Hls !== "undefined" && Hls.isSupported()) {
      player = new Hls({ enableWorker: false });
      player.loadSource(href);
      player.attachMedia(video);
    } else {
      video.src = href; // a browser that plays HLS itself
    }
    video.play().catch(() => {});
  }

  function select(ref) {
    selected = ref;
    for (const [r, row] of rows) row.tr.classList.toggle("selected", r === ref);
    renderDetails(lastSeen.get(ref));
  }

  // A selected job that left the list (older, or filtered out): its own status route.
  async function selectedStatus(ref) {
    const job = lastSeen.get(ref);
    if (!job) return null;
    const query = job.tenant ? [["tenant", job.tenant]] : [];
    try {
      return await api(`api/render/${encodeURIComponent(job.job_id)}/status`, query);
    } catch (err) {
      return err.status === 404 ? null : job;
    }
  }

  // -- the poll ------------------------------------------------------------------------------------
  async function poll() {
    timer = null;
    const mine = generation;
    const query = [["limit", String(LIMIT)]];
    const state = $("state-filter").value;
    if (state) query.push(["state", state]);
    try {
      const [list, queue] = await Promise.all([api("api/render/jobs", query), api("api/render/queue/status")]);
      if (mine !== generation) return;
      showMain();
      renderQueue(queue);
      const shown = renderJobs(list);
      if (selected !== null) {
        renderDetails(shown.has(selected) ? shown.get(selected) : await selectedStatus(selected));
      }
      setConnection(`Updated ${new Date().toLocaleTimeString()}`, false);
    } catch (err) {
      if (mine !== generation) return;
      if (err.status === 401) {
        const hadKey = Boolean(apiKey());
        window.sessionStorage.removeItem(KEY_ITEM);
        showKeyPanel(hadKey ? `The API key was refused (401 ${err.code || "unauthorized"}): ${err.message}`
          : "This service needs an API key to show its jobs.");
        return; // no more polls until a key is given
      }
      if (err.status === 403) {
        showKeyPanel(`This API key may not see these jobs (403 ${err.code || "forbidden"}): ${err.message}`);
        return;
      }
      setConnection(`Not updated: ${err.status ? `HTTP ${err.status} ` : ""}${err.message}`, true);
    }
    if (mine === generation) timer = window.setTimeout(poll, POLL_MS);
  }

  function restart() {
    generation += 1;
    if (timer !== null) window.clearTimeout(timer);
    rows.clear();
    lastSeen = new Map();
    selected = null;
    $("job-rows").replaceChildren();
    renderDetails(null);
    poll();
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    window.sessionStorage.setItem(KEY_ITEM, key);
    $("key-input").value = "";
    $("auth-message").textContent = "";
    setConnection("Connecting…", false);
    restart();
  });

  $("forget-key").addEventListener("click", () => {
    window.sessionStorage.removeItem(KEY_ITEM);
    restart();
  });

  $("state-filter").addEventListener("change", () => {
    if (timer !== null) window.clearTimeout(timer);
    generation += 1;
    poll();
  });

  poll();
})();
