// masque playground: build personas (create, edit, delete, import character
// cards), see their kind and size, and chat with one persona or two side by
// side over the streaming chat completions API, with tokens/s and prompt
// cache hits per reply and live server totals from /metrics.
"use strict";

const $ = (id) => document.getElementById(id);
const panes = {
  a: { select: $("persona-a"), log: $("log-a"), stats: $("stats-a"), about: $("about-a"), kind: $("kind-a"), history: [] },
  b: { select: $("persona-b"), log: $("log-b"), stats: $("stats-b"), about: $("about-b"), kind: $("kind-b"), history: [] },
};
let personas = {}; // id -> persona object (when /v1/personas is readable)
let modelIDs = [];
let busy = 0;
let editing = null; // the persona being edited, or null for a new one

// What each persona kind is called here.
const kindNames = { base: "prompt", mask: "mask", lora: "LoRA", "mask+lora": "mask + LoRA", model: "own model" };
const kindHelp = {
  base: "a system prompt over the shared base model",
  mask: "a weight mask (pruned weights) over the shared base model",
  lora: "a LoRA adapter over the shared base model",
  "mask+lora": "a weight mask and a LoRA adapter over the shared base model",
  model: "a separate model folder, e.g. a pruned model",
};

for (const k of ["apikey", "adminkey"]) {
  $(k).value = localStorage.getItem("masque-" + k) || "";
  $(k).addEventListener("change", () => {
    localStorage.setItem("masque-" + k, $(k).value);
    loadModels();
  });
}

// headers: the API key (or, without one, the admin key, which also passes),
// or the admin key for persona management.
function headers(admin, contentType) {
  const h = { "Content-Type": contentType || "application/json" };
  const api = $("apikey").value.trim(), adm = $("adminkey").value.trim();
  const key = admin ? (adm || api) : (api || adm);
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function status(text) {
  $("status").textContent = text || "";
}

async function apiError(resp) {
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) return resp.status + ": " + body.error.message;
  } catch (e) { /* not JSON */ }
  return "HTTP " + resp.status;
}

function formatBytes(n) {
  if (!n) return "shared base";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : n) + " " + units[i];
}

// maskText describes a mask persona's mask, as its file says: the method
// that made it, its granularity and the share of weights it prunes ("" for
// a persona without a mask).
function maskText(p) {
  if (!p || !p.mask) return "";
  const m = p.mask, parts = [m.method || "method not recorded"];
  if (m.granularity) parts.push(m.granularity);
  parts.push((100 * m.sparsity).toFixed(1) + "% pruned");
  return parts.join(" · ");
}

async function loadModels() {
  status("");
  try {
    const resp = await fetch("/v1/models", { headers: headers() });
    if (!resp.ok) { status(await apiError(resp)); return; }
    modelIDs = (await resp.json()).data.map((m) => m.id);
    personas = {};
    const pr = await fetch("/v1/personas", { headers: headers() });
    if (pr.ok) for (const p of (await pr.json()).data) personas[p.id] = p;
  } catch (e) {
    status("cannot reach the server: " + e);
    return;
  }
  renderList();
  for (const [name, pane] of Object.entries(panes)) {
    const keep = pane.select.value;
    pane.select.textContent = "";
    for (const id of modelIDs) {
      const o = document.createElement("option");
      o.value = id;
      o.textContent = id;
      pane.select.appendChild(o);
    }
    // Default: the first persona on the left, the second on the right.
    const fallback = modelIDs.length > 1 ? (name === "a" ? modelIDs[1] : modelIDs[Math.min(2, modelIDs.length - 1)]) : modelIDs[0];
    pane.select.value = modelIDs.includes(keep) ? keep : fallback;
    showAbout(pane);
  }
}

// renderList shows every persona with its kind and size, and buttons to
// chat with it, compare it and edit it.
function renderList() {
  const list = $("persona-list");
  list.textContent = "";
  for (const id of modelIDs) {
    const p = personas[id];
    const li = document.createElement("li");
    li.className = "persona";
    li.dataset.id = id;
    const head = document.createElement("div");
    head.className = "persona-head";
    const name = document.createElement("strong");
    name.textContent = id;
    head.appendChild(name);
    const kind = p ? p.kind : "base";
    const badge = document.createElement("span");
    badge.className = "badge kind-" + kind.replace("+", "-");
    badge.textContent = p ? kindNames[kind] || kind : "base model";
    badge.title = p ? kindHelp[kind] || "" : "the base model with no persona";
    head.appendChild(badge);
    li.appendChild(head);
    const size = document.createElement("div");
    size.className = "size";
    size.textContent = p ? formatBytes(p.memory_bytes) : "";
    li.appendChild(size);
    if (p && p.mask) {
      const info = document.createElement("div");
      info.className = "mask-info";
      info.textContent = maskText(p);
      info.title = "the mask's method" + (p.mask.target_sparsity ? ", target sparsity " + (100 * p.mask.target_sparsity).toFixed(1) + "%" : "") +
        " and the share of the base model's linear weights it prunes";
      li.appendChild(info);
    }
    const buttons = document.createElement("div");
    buttons.className = "persona-buttons";
    const button = (label, aria, fn) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.setAttribute("aria-label", aria);
      b.addEventListener("click", fn);
      buttons.appendChild(b);
      return b;
    };
    button("Chat", "chat with " + id, () => { choose(panes.a, id); $("input").focus(); });
    button("Compare", "compare with " + id + " side by side", () => {
      $("compare").checked = true;
      $("pane-b").hidden = false;
      choose(panes.b, id);
      $("input").focus();
    }).className = "secondary";
    if (p) button("Edit", "edit " + id, () => openEditor(p)).className = "secondary";
    li.appendChild(buttons);
    list.appendChild(li);
  }
}

function choose(pane, id) {
  pane.select.value = id;
  showAbout(pane);
  resetPane(pane);
}

function showAbout(pane) {
  const p = personas[pane.select.value];
  pane.about.textContent = p ? (p.description || p.system_prompt || "") : "";
  const kind = p ? p.kind : "";
  pane.kind.textContent = p ? [kindNames[kind], maskText(p), formatBytes(p.memory_bytes)].filter(Boolean).join(" · ") : "";
  pane.kind.title = p ? kindHelp[kind] || "" : "";
}

function resetPane(pane) {
  pane.history = [];
  pane.log.textContent = "";
  pane.stats.textContent = "";
  delete pane.stats.dataset.done;
  const p = personas[pane.select.value];
  if (p && p.greeting) {
    addMessage(pane, "assistant", p.greeting);
    pane.history.push({ role: "assistant", content: p.greeting });
  }
}

for (const pane of Object.values(panes)) {
  pane.select.addEventListener("change", () => { showAbout(pane); resetPane(pane); });
}
$("compare").addEventListener("change", () => { $("pane-b").hidden = !$("compare").checked; });
$("reset").addEventListener("click", () => Object.values(panes).forEach(resetPane));

// ---- persona editor ----

const fields = {
  name: $("ed-name"), description: $("ed-description"), system_prompt: $("ed-system"), greeting: $("ed-greeting"),
  examples: $("ed-examples"), temperature: $("ed-temperature"), top_p: $("ed-top-p"), max_tokens: $("ed-max-tokens"),
};

function openEditor(p) {
  editing = p || null;
  const s = p ? p.spec || {} : {};
  $("editor-title").textContent = p ? "Edit " + p.id : "New persona";
  for (const [k, el] of Object.entries(fields)) el.value = s[k] != null ? s[k] : "";
  fields.name.readOnly = !!p;
  $("ed-delete").hidden = !p;
  $("ed-status").textContent = p ? [kindNames[p.kind], maskText(p), formatBytes(p.memory_bytes)].filter(Boolean).join(" · ") +
    (p.kind !== "base" ? " (its files are kept)" : "") : "";
  $("editor").hidden = false;
  (p ? fields.description : fields.name).focus();
}

function closeEditor() {
  $("editor").hidden = true;
  editing = null;
  $("new-persona").focus();
}

$("new-persona").addEventListener("click", () => openEditor(null));
$("ed-cancel").addEventListener("click", closeEditor);
$("editor").addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.preventDefault(); closeEditor(); } });

$("editor-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const spec = {};
  for (const k of ["name", "description", "system_prompt", "greeting", "examples"]) {
    const v = fields[k].value.trim();
    if (v) spec[k] = v;
  }
  for (const k of ["temperature", "top_p"]) {
    if (fields[k].value.trim() !== "") spec[k] = parseFloat(fields[k].value);
  }
  if (fields.max_tokens.value.trim() !== "") spec.max_tokens = parseInt(fields.max_tokens.value, 10);
  if (editing && editing.spec && editing.spec.tags) spec.tags = editing.spec.tags;
  $("ed-status").textContent = "saving…";
  const url = "/v1/personas" + (editing ? "?replace=true" : "");
  try {
    const resp = await fetch(url, { method: "POST", headers: headers(true), body: JSON.stringify(spec) });
    if (!resp.ok) { $("ed-status").textContent = await apiError(resp); return; }
    const p = await resp.json();
    await loadModels();
    choose(panes.a, p.id);
    status((editing ? "saved " : "created ") + p.id);
    closeEditor();
  } catch (e) {
    $("ed-status").textContent = String(e.message || e);
  }
});

$("ed-delete").addEventListener("click", async () => {
  if (!editing || !confirm("Delete persona " + editing.id + "?")) return;
  const resp = await fetch("/v1/personas/" + encodeURIComponent(editing.id), { method: "DELETE", headers: headers(true) });
  if (!resp.ok) { $("ed-status").textContent = await apiError(resp); return; }
  status("deleted " + editing.id);
  closeEditor();
  await loadModels();
});

// ---- character cards ----

async function importCard(file) {
  if (!file) return;
  const png = file.type === "image/png" || /\.png$/i.test(file.name);
  status("importing " + file.name + "…");
  try {
    const resp = await fetch("/v1/personas", { method: "POST", headers: headers(true, png ? "image/png" : "application/json"), body: file });
    if (!resp.ok) { status("card " + file.name + ": " + await apiError(resp)); return; }
    const p = await resp.json();
    await loadModels();
    choose(panes.a, p.id);
    status("imported " + p.id + " from " + file.name);
    $("input").focus();
  } catch (e) {
    status("card " + file.name + ": " + (e.message || e));
  }
}

const drop = $("dropzone");
for (const ev of ["dragenter", "dragover"]) {
  drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
  importCard(f);
});
$("card-file").addEventListener("change", () => {
  importCard($("card-file").files[0]);
  $("card-file").value = "";
});

// ---- chat ----

function addMessage(pane, role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  pane.log.appendChild(div);
  pane.log.scrollTop = pane.log.scrollHeight;
  return div;
}

// chat streams one reply of pane's persona to its conversation.
async function chat(pane, text) {
  pane.history.push({ role: "user", content: text });
  addMessage(pane, "user", text);
  const out = addMessage(pane, "assistant streaming", "");
  const body = {
    model: pane.select.value,
    messages: pane.history,
    stream: true,
    stream_options: { include_usage: true },
  };
  // Left empty, the persona's own sampling defaults apply.
  const temp = $("temperature").value.trim(), maxTokens = $("max-tokens").value.trim();
  if (temp !== "") body.temperature = parseFloat(temp);
  if (maxTokens !== "") body.max_tokens = parseInt(maxTokens, 10);
  const seed = $("seed").value.trim();
  if (seed !== "") body.seed = parseInt(seed, 10);
  const t0 = performance.now();
  let tFirst = 0, chunks = 0, tokens = 0, reply = "", usage = null;
  pane.stats.textContent = "waiting…";
  try {
    const resp = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!resp.ok) throw new Error(await apiError(resp));
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const msg = JSON.parse(data);
          if (msg.error) throw new Error(msg.error.message);
          if (msg.usage) { usage = msg.usage; tokens = msg.usage.completion_tokens; }
          const c = msg.choices && msg.choices[0];
          if (c && c.delta && c.delta.content) {
            if (!tFirst) tFirst = performance.now();
            chunks++;
            reply += c.delta.content;
            out.textContent = reply;
            pane.log.scrollTop = pane.log.scrollHeight;
            const secs = (performance.now() - tFirst) / 1000;
            pane.stats.textContent = chunks + " tokens" + (secs > 0 ? ", " + (chunks / secs).toFixed(1) + " tok/s" : "");
          }
        }
      }
    }
    const tEnd = performance.now();
    const n = tokens || chunks;
    const gen = tFirst ? (tEnd - tFirst) / 1000 : 0;
    const rate = gen > 0 ? (Math.max(n - 1, 1) / gen) : 0;
    let cache = "";
    if (usage) {
      const cached = (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0;
      cache = " · cache " + cached + "/" + usage.prompt_tokens + " prompt tokens";
      pane.stats.dataset.cached = cached;
    }
    pane.stats.textContent = n + " tokens · " + rate.toFixed(1) + " tok/s · first token " +
      (tFirst ? ((tFirst - t0) / 1000).toFixed(2) : "–") + " s" + cache;
    pane.stats.dataset.done = "1";
    pane.history.push({ role: "assistant", content: reply });
  } catch (e) {
    out.className = "msg error";
    out.textContent = String(e.message || e);
    pane.stats.textContent = "error";
    pane.stats.dataset.done = "1";
    pane.history.pop();
  } finally {
    out.classList.remove("streaming");
  }
  pollMetrics();
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("input").value.trim();
  if (!text || busy) return;
  $("input").value = "";
  busy++;
  $("send").disabled = true;
  const active = [panes.a];
  if ($("compare").checked) active.push(panes.b);
  for (const p of active) delete p.stats.dataset.done;
  await Promise.all(active.map((p) => chat(p, text)));
  busy--;
  $("send").disabled = false;
  $("input").focus();
});
$("input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("form").requestSubmit();
  }
});

// ---- live server totals from /metrics ----

// parseMetrics sums Prometheus samples by metric name (and, for
// masque_tokens_total, by kind).
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    let name = m[1];
    const v = parseFloat(m[3]);
    if (name === "masque_tokens_total" && m[2]) {
      const k = m[2].match(/kind="([^"]*)"/);
      if (k) name += ":" + k[1];
    }
    out[name] = (out[name] || 0) + v;
  }
  return out;
}

let lastMetrics = null;
async function pollMetrics() {
  if (document.hidden) return;
  let m;
  try {
    const resp = await fetch("/metrics", { headers: headers() });
    if (!resp.ok) { $("live").textContent = "server: " + await apiError(resp); return; }
    m = parseMetrics(await resp.text());
  } catch (e) {
    $("live").textContent = "server: unreachable";
    return;
  }
  const now = performance.now();
  const done = m["masque_tokens_total:completion"] || 0;
  let rate = 0;
  if (lastMetrics && now > lastMetrics.t) rate = Math.max(0, done - lastMetrics.done) / ((now - lastMetrics.t) / 1000);
  lastMetrics = { t: now, done };
  const hits = m["masque_prompt_cache_hits_total"] || 0, cached = m["masque_prompt_cache_tokens_total"] || 0;
  const live = $("live");
  live.dataset.tokens = done;
  live.dataset.cacheHits = hits;
  live.dataset.cacheTokens = cached;
  live.textContent = "server: " + rate.toFixed(1) + " tok/s · " + done + " tokens · cache hits " + hits +
    " (" + cached + " tokens) · active " + (m["masque_active_sequences"] || 0) + " · queued " + (m["masque_queue_depth"] || 0);
}
setInterval(pollMetrics, 2000);

loadModels().then(pollMetrics);
