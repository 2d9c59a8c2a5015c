// masque playground: chat with one persona, or two side by side, over the
// streaming chat completions API.
"use strict";

const $ = (id) => document.getElementById(id);
const panes = {
  a: { select: $("persona-a"), log: $("log-a"), stats: $("stats-a"), about: $("about-a"), history: [] },
  b: { select: $("persona-b"), log: $("log-b"), stats: $("stats-b"), about: $("about-b"), history: [] },
};
let personas = {}; // id -> persona object (when /v1/personas is readable)
let busy = 0;

$("apikey").value = localStorage.getItem("masque-api-key") || "";
$("apikey").addEventListener("change", () => {
  localStorage.setItem("masque-api-key", $("apikey").value);
  loadModels();
});

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
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

async function loadModels() {
  status("");
  let ids = [];
  try {
    const resp = await fetch("/v1/models", { headers: headers() });
    if (!resp.ok) { status(await apiError(resp)); return; }
    ids = (await resp.json()).data.map((m) => m.id);
    personas = {};
    const pr = await fetch("/v1/personas", { headers: headers() });
    if (pr.ok) for (const p of (await pr.json()).data) personas[p.id] = p;
  } catch (e) {
    status("cannot reach the server: " + e);
    return;
  }
  for (const [name, pane] of Object.entries(panes)) {
    const keep = pane.select.value;
    pane.select.textContent = "";
    for (const id of ids) {
      const o = document.createElement("option");
      o.value = id;
      o.textContent = personas[id] ? id + " (" + personas[id].kind + ")" : id;
      pane.select.appendChild(o);
    }
    // Default: the first persona on the left, the second on the right.
    const fallback = ids.length > 1 ? (name === "a" ? ids[1] : ids[Math.min(2, ids.length - 1)]) : ids[0];
    pane.select.value = ids.includes(keep) ? keep : fallback;
    showAbout(pane);
  }
}

function showAbout(pane) {
  const p = personas[pane.select.value];
  pane.about.textContent = p ? (p.description || p.system_prompt || "") : "";
}

function resetPane(pane) {
  pane.history = [];
  pane.log.textContent = "";
  pane.stats.textContent = "";
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
    temperature: parseFloat($("temperature").value),
    max_tokens: parseInt($("max-tokens").value, 10),
  };
  const seed = $("seed").value.trim();
  if (seed !== "") body.seed = parseInt(seed, 10);
  const t0 = performance.now();
  let tFirst = 0, chunks = 0, tokens = 0, reply = "";
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
          if (msg.usage) tokens = msg.usage.completion_tokens;
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
    pane.stats.textContent = n + " tokens · " + rate.toFixed(1) + " tok/s · first token " +
      (tFirst ? ((tFirst - t0) / 1000).toFixed(2) : "–") + " s";
    pane.stats.dataset.done = "1";
    pane.history.push({ role: "assistant", content: reply });
  } catch (e) {
    out.className = "msg error";
    out.textContent = String(e.message || e);
    pane.stats.textContent = "error";
    pane.history.pop();
  } finally {
    out.classList.remove("streaming");
  }
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

loadModels();
