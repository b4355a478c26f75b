// corral's web UI: a few pages over the master's operator API, rendered in
// the browser with no framework and nothing fetched from elsewhere. The
// route is the URL hash (#/agents/ID), so every page can be linked to.
"use strict";

const palette = ["#2f6fde", "#e67e22", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d"];

// h builds an element: h("a", {href: "#/"}, "text", child...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function table(head, rows, empty) {
  if (!rows.length) return h("p", {class: "muted"}, empty || "none");
  return h("table", {}, h("thead", {}, h("tr", {}, head.map(c => h("th", {}, c)))),
    h("tbody", {}, rows.map(r => h("tr", {}, r.map(c => h("td", {}, c))))));
}

function kv(pairs) {
  return h("table", {class: "kv"}, h("tbody", {}, pairs.filter(p => p).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))));
}

const link = (href, text) => h("a", {href}, text);
const agentLink = id => link("#/agents/" + encodeURIComponent(id), id);
const fwLink = (id, name) => link("#/frameworks/" + encodeURIComponent(id), name || id);
const taskLink = (fw, id) => link("#/tasks/" + encodeURIComponent(fw) + "/" + encodeURIComponent(id), id);
const stateSpan = s => h("span", {class: "state-" + s}, s.replace(/^TASK_/, ""));
const fmt3 = x => (x || 0).toFixed(3);
const when = t => t ? new Date(t).toLocaleTimeString() : "";

// scalars takes the scalar resources of a structured resources object
// ({cpus: 2, mem: 1024, ports: [[31000, 32000]]}, as the API serves it
// beside the string form), or parses the string form when that is all
// there is: "cpus:2;mem:1024;ports:[...]" gives {cpus: 2, mem: 1024}.
function scalars(structured, s) {
  if (structured && typeof structured === "object") {
    return Object.fromEntries(Object.entries(structured).filter(([, v]) => typeof v === "number"));
  }
  return parseRes(s);
}

function parseRes(s) {
  const out = {};
  for (const part of (s || "").split(";")) {
    const i = part.indexOf(":");
    if (i < 0) continue;
    const v = Number(part.slice(i + 1));
    if (!Number.isNaN(v)) out[part.slice(0, i)] = v;
  }
  return out;
}

function bar(used, total, label) {
  const pct = total > 0 ? Math.min(100, 100 * used / total) : 0;
  return h("div", {title: label || ""}, h("div", {class: "bar"}, h("span", {style: "width:" + pct.toFixed(1) + "%"})),
    h("span", {class: "muted"}, label || ""));
}

// resBars draws one bar per scalar of an agent: used of total.
function resBars(a) {
  const u = scalars(a.used_structured, a.used), t = scalars(a.resources_structured, a.resources);
  return Object.keys(t).filter(k => k !== "disk" || t[k] > 0).map(k => bar(u[k] || 0, t[k], `${k} ${+(u[k] || 0).toFixed(2)} / ${t[k]}`));
}

// chart draws series [{name, points: [[t, v]...]}] as an SVG line chart.
function chart(title, series, yMax) {
  const W = 640, H = 140, L = 40, B = 18;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("data-title", title);
  const all = series.flatMap(s => s.points);
  const t0 = Math.min(...all.map(p => p[0]), Date.now() - 60000), t1 = Math.max(...all.map(p => p[0]), Date.now());
  const top = yMax || Math.max(1e-9, ...all.map(p => p[1])) * 1.1;
  const x = t => L + (W - L - 4) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => (H - B) - (H - B - 6) * v / top;
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
  };
  add("text", {x: L, y: 10}, title);
  add("text", {x: 2, y: y(top) + 10}, +top.toPrecision(3));
  add("text", {x: 2, y: H - B}, "0");
  add("text", {x: L, y: H - 4}, new Date(t0).toLocaleTimeString());
  add("text", {x: W - 60, y: H - 4}, new Date(t1).toLocaleTimeString());
  add("line", {x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#e3e6ec"});
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
    add("path", {d, fill: "none", stroke: s.color || palette[i % palette.length], "stroke-width": 1.6});
  });
  const legend = h("div", {class: "legend"}, series.map((s, i) =>
    h("span", {}, h("i", {style: "background:" + (s.color || palette[i % palette.length])}), s.name)));
  return h("div", {}, svg, legend);
}

const series = (hist, pick) => hist.map(s => [Date.parse(s.at), pick(s) || 0]);

async function api(path, opts) {
  const r = await fetch(path, opts);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `${path}: ${r.status} ${text.slice(0, 200)}`);
  return body;
}

function showError(e) {
  const el = document.getElementById("error");
  el.textContent = e ? String(e.message || e) : "";
  el.hidden = !e;
}

// allTasks lists every task with its framework, live ones first.
function allTasks(st) {
  const out = [];
  for (const f of (st.frameworks || []).concat(st.completed_frameworks || [])) {
    for (const t of f.tasks || []) out.push({fw: f, t, live: true});
    for (const t of f.completed_tasks || []) out.push({fw: f, t, live: false});
  }
  return out;
}

// ---- pages ----

const pages = {
  async overview() {
    const [st, hist] = await Promise.all([api("/api/v1/state"), api("/api/v1/history")]);
    const byState = {};
    for (const {t, live} of allTasks(st)) if (live) byState[t.state] = (byState[t.state] || 0) + 1;
    let total = {}, used = {};
    for (const a of st.agents) if (a.connected) {
      for (const [k, v] of Object.entries(scalars(a.resources_structured, a.resources))) total[k] = (total[k] || 0) + v;
      for (const [k, v] of Object.entries(scalars(a.used_structured, a.used))) used[k] = (used[k] || 0) + v;
    }
    const alloc = st.allocator || {};
    const resNames = Object.keys(total).filter(k => ["cpus", "mem", "disk", "gpus"].includes(k) && total[k] > 0);
    return [
      h("h1", {}, "Cluster"),
      h("div", {class: "cards"},
        h("div", {class: "card"}, h("div", {class: "muted"}, "agents"), h("div", {class: "big"}, st.agents.filter(a => a.connected).length),
          h("div", {class: "muted"}, `${st.agents.length} registered`)),
        h("div", {class: "card"}, h("div", {class: "muted"}, "frameworks"), h("div", {class: "big"}, st.frameworks.length),
          h("div", {class: "muted"}, `${(st.completed_frameworks || []).length} completed`)),
        h("div", {class: "card"}, h("div", {class: "muted"}, "live tasks"), h("div", {class: "big"}, Object.values(byState).reduce((a, b) => a + b, 0)),
          h("div", {class: "muted"}, Object.entries(byState).map(([k, v]) => `${k.replace(/^TASK_/, "").toLowerCase()} ${v}`).join(", ") || "none")),
        h("div", {class: "card"}, h("div", {class: "muted"}, "allocator"), h("div", {class: "big"}, link("#/allocator", alloc.name || "?")),
          h("div", {class: "muted"}, `${alloc.version || ""} · generation ${alloc.generation || 0} · restarts ${alloc.restarts || 0}`))),
      h("h2", {}, "Capacity and allocation"),
      table(["resource", "allocated / total"], resNames.map(k => [k, bar(used[k] || 0, total[k], `${+(used[k] || 0).toFixed(2)} / ${total[k]}`)])),
      h("h2", {}, "Last hour"),
      h("div", {class: "charts"}, resNames.map(k => chart(k, [
        {name: "total", color: "#9aa3b5", points: series(hist, s => s.total[k])},
        {name: "allocated", color: "#2f6fde", points: series(hist, s => s.allocated[k])},
      ]))),
    ];
  },

  async agents() {
    const st = await api("/api/v1/state");
    return [h("h1", {}, "Agents"), table(["agent", "hostname", "status", "allocated / total", "attributes"],
      st.agents.map(a => [agentLink(a.id), a.hostname, a.drain || (a.connected ? "ready" : "disconnected"), resBars(a),
        Object.entries(a.attributes || {}).map(([k, v]) => `${k}=${v}`).join(", ")]), "no agents registered")];
  },

  async agent(id) {
    const st = await api("/api/v1/state");
    const a = st.agents.find(x => x.id === id);
    if (!a) return [h("h1", {}, "Agent " + id), h("p", {class: "muted"}, "not registered (any more)")];
    const tasks = allTasks(st).filter(x => x.t.agent_id === id);
    return [h("h1", {}, "Agent " + id),
      kv([["hostname", a.hostname], ["connected", a.connected ? "yes" : "no"],
        a.drain && ["drain", `${a.drain} (deadline ${when(a.drain_deadline)})`], ["url", a.url ? link(a.url + "/api/v1/state", a.url) : ""],
        ["resources", a.resources], ["allocated", a.used], ["allocated of total", resBars(a)],
        ["attributes", Object.entries(a.attributes || {}).map(([k, v]) => `${k}=${v}`).join(", ")]]),
      h("h2", {}, "Tasks"),
      table(["task", "framework", "state", "resources"], tasks.map(({fw, t}) => [taskLink(fw.id, t.id), fwLink(fw.id, fw.name), stateSpan(t.state), t.resources]), "no tasks")];
  },

  async frameworks() {
    const st = await api("/api/v1/state");
    const row = f => [fwLink(f.id, f.id), f.name, (f.roles || []).join(", "), f.connected ? "yes" : "no", fmt3(f.dominant_share),
      (f.tasks || []).length, f.allocated || ""];
    const head = ["framework", "name", "roles", "connected", "dominant share", "live tasks", "allocated"];
    return [h("h1", {}, "Frameworks"), table(head, st.frameworks.map(row), "no frameworks"),
      h("h2", {}, "Completed"), table(head.concat(["removed"]), (st.completed_frameworks || []).slice().reverse().map(f => row(f).concat([when(f.removed_at)])), "none")];
  },

  async framework(id) {
    const [st, hist] = await Promise.all([api("/api/v1/state"), api("/api/v1/history")]);
    const f = st.frameworks.find(x => x.id === id) || (st.completed_frameworks || []).find(x => x.id === id);
    if (!f) return [h("h1", {}, "Framework " + id), h("p", {class: "muted"}, "not known to the master")];
    const trow = t => [taskLink(f.id, t.id), t.name || "", agentLink(t.agent_id), stateSpan(t.state), t.resources, t.message || ""];
    const head = ["task", "name", "agent", "state", "resources", "message"];
    return [h("h1", {}, `Framework ${f.name} `, h("span", {class: "muted"}, f.id)),
      kv([["roles", (f.roles || []).join(", ")], ["connected", f.connected ? "yes" : "no"], ["registered", when(f.registered_at)],
        f.removed_at && ["removed", when(f.removed_at)], ["dominant share", fmt3(f.dominant_share)], ["allocated", f.allocated],
        ["outstanding offers", f.outstanding_offers], ["capabilities", (f.capabilities || []).join(", ")]]),
      h("h2", {}, "Dominant share, last hour"),
      chart("dominant share", [{name: f.name, points: series(hist, s => s.framework_shares[f.id])}], 1),
      h("h2", {}, "Live tasks"), table(head, (f.tasks || []).map(trow), "none"),
      h("h2", {}, "Completed tasks"), table(head, (f.completed_tasks || []).slice().reverse().map(trow), "none")];
  },

  async tasks(_, query) {
    const st = await api("/api/v1/state");
    const q = (query.get("q") || "").toLowerCase(), only = query.get("state") || "";
    const rows = allTasks(st).filter(({fw, t}) =>
      (!only || t.state === only) && (!q || [t.id, t.name, fw.name, fw.id, t.agent_id, t.state].some(s => (s || "").toLowerCase().includes(q))));
    const states = [...new Set(allTasks(st).map(x => x.t.state))].sort();
    const update = () => {
      const p = new URLSearchParams();
      const qv = document.getElementById("task-q").value, sv = document.getElementById("task-state").value;
      if (qv) p.set("q", qv);
      if (sv) p.set("state", sv);
      location.hash = "#/tasks" + (p.toString() ? "?" + p : "");
    };
    return [h("h1", {}, "Tasks"),
      h("p", {}, h("input", {id: "task-q", placeholder: "filter: id, name, framework, agent", value: query.get("q") || "", onchange: update}), " ",
        h("select", {id: "task-state", onchange: update}, h("option", {value: ""}, "any state"),
          states.map(s => h("option", {value: s, selected: s === only}, s)))),
      table(["task", "framework", "agent", "state", "resources", "live"], rows.map(({fw, t, live}) =>
        [taskLink(fw.id, t.id), fwLink(fw.id, fw.name), agentLink(t.agent_id), stateSpan(t.state), t.resources, live ? "yes" : "no"]), "no tasks match")];
  },

  async task(fwID, taskID) {
    const st = await api("/api/v1/state");
    const x = allTasks(st).find(({fw, t}) => fw.id === fwID && t.id === taskID);
    if (!x) return [h("h1", {}, "Task " + taskID), h("p", {class: "muted"}, "not known to the master (any more)")];
    const {fw, t, live} = x;
    const kill = async () => {
      try {
        await api(`/api/v1/tasks/${encodeURIComponent(fw.id)}/${encodeURIComponent(t.id)}/kill`, {method: "POST"});
        document.getElementById("kill-status").textContent = "kill sent";
      } catch (e) { showError(e); }
    };
    const sandbox = h("div", {id: "sandbox"}, h("p", {class: "muted"}, "loading sandbox…"));
    loadSandbox(sandbox, t.agent_id, fw.id, t.id);
    const usage = h("div", {id: "usage"}, h("p", {class: "muted"}, live ? "loading usage…" : "the task has ended"));
    if (live) loadUsage(usage, t.agent_id, fw.id, t.id);
    return [h("h1", {}, "Task " + t.id),
      kv([["framework", fwLink(fw.id, fw.name)], ["agent", agentLink(t.agent_id)], ["state", stateSpan(t.state)], ["role", t.role],
        ["resources", t.resources], t.message && ["message", t.message], t.exit_code !== undefined && ["exit code", t.exit_code],
        t.healthy !== undefined && ["health", h("span", {class: t.healthy ? "state-TASK_RUNNING" : "state-TASK_FAILED"}, t.healthy ? "healthy" : "unhealthy")],
        t.within_guarantee && ["within guarantee", "yes"]]),
      live ? h("p", {}, h("button", {class: "danger", id: "kill", onclick: kill}, "Kill task"), " ", h("span", {id: "kill-status", class: "muted"})) : null,
      h("h2", {}, "History"),
      table(["state", "at", "reason", "source", "message"], (t.history || []).map(e =>
        [stateSpan(e.state), when(e.at), e.reason || "", e.source || "", e.message || ""])),
      h("h2", {}, "Usage"), usage,
      h("h2", {}, "Sandbox"), sandbox];
  },

  async roles() {
    const [st, hist] = await Promise.all([api("/api/v1/state"), api("/api/v1/history")]);
    return [h("h1", {}, "Roles"),
      table(["role", "weight", "priority", "guarantee", "limit", "allocated", "dominant share", "frameworks"], st.roles.map(r =>
        [r.name, r.weight, r.priority, r.guarantee || "", r.limit || "", r.allocated || "", fmt3(r.dominant_share), (r.frameworks || []).length]), "no roles"),
      h("h2", {}, "Dominant shares, last hour"),
      chart("role shares", st.roles.map(r => ({name: r.name, points: series(hist, s => s.role_shares[r.name])})), 1)];
  },

  async allocator() {
    const a = await api("/api/v1/allocator");
    const plugin = (title, p) => p ? [h("h2", {}, title),
      kv([["plugin", `${p.name} ${p.version || ""}`], ["pid", p.pid], ["path", p.path], ["sha256", h("code", {}, p.sha256 || "")],
        p.config && ["config", h("code", {}, p.config)], ["since", when(p.since)], ["restarts / faults", `${p.restarts} / ${p.faults}`],
        ["cycles", `${p.cycles} (last ${(p.last_cycle_ms || 0).toFixed(2)} ms)`], p.error && ["error", p.error]]),
      table(["metric", "value"], Object.entries(p.metrics || {}).sort().map(([k, v]) => [k, +v.toPrecision(4)]), "no metrics reported")] : [];
    const c = a.candidate;
    const diff = c ? [h("h2", {}, `Candidate ${c.name}: ${c.state}`),
      kv([["shadow cycles", `${c.diff.cycles} (${c.shadow_cycles_left} left, promote ${c.manual ? "manual" : "auto"})`],
        ["offers active / candidate", `${c.diff.active_offers} / ${c.diff.candidate_offers} (${c.diff.candidate_invalid} invalid)`],
        ["offers to other frameworks", c.diff.offers_to_other_frameworks]]),
      table(["role", "active offered", "candidate offered"], Object.entries(c.diff.roles || {}).map(([r, p]) => [r, p.active, p.candidate])),
      table(["framework", "projected share (active)", "projected share (candidate)"], Object.entries(c.diff.projected_shares || {}).map(([f, p]) => [fwLink(f, f), fmt3(p.active), fmt3(p.candidate)]))] : [];
    return [h("h1", {}, "Allocator ", h("span", {class: "muted"}, `generation ${a.generation}`)),
      plugin("Active", a.active), a.previous ? plugin(`Previous (probation: ${a.probation_cycles_left} cycles left)`, a.previous) : [],
      diff, h("h2", {}, "Swap history"),
      table(["at", "event", "from", "to", "generation", "latency", "reason"], (a.history || []).slice().reverse().map(r =>
        [when(r.at), r.event, r.from || "", r.to, r.generation, r.latency_ms ? r.latency_ms.toFixed(1) + " ms" : "", [r.reason, r.detail].filter(Boolean).join(": ")]))];
  },
};

// ---- sandbox browser ----

function sandboxURL(agent, fw, task, file) {
  return `/api/v1/agents/${encodeURIComponent(agent)}/sandbox/${encodeURIComponent(fw)}/${encodeURIComponent(task)}` +
    (file ? "/" + encodeURIComponent(file) : "");
}

// loadUsage fills el with a live task's measured usage, as its agent's
// isolator reports it (through the master: /api/v1/agents/A/usage/F/T).
async function loadUsage(el, agent, fw, task) {
  let u;
  try {
    u = await api(`/api/v1/agents/${encodeURIComponent(agent)}/usage/${encodeURIComponent(fw)}/${encodeURIComponent(task)}`);
  } catch (e) {
    el.replaceChildren(h("p", {class: "muted"}, "usage not available: " + e.message));
    return;
  }
  const mib = b => (b / 1048576).toFixed(1) + " MiB";
  el.replaceChildren(kv([
    ["cpu time", `${(u.cpu_user_seconds || 0).toFixed(2)} s user, ${(u.cpu_system_seconds || 0).toFixed(2)} s system`],
    ["memory", mib(u.mem_usage_bytes || u.mem_rss_bytes || 0) + (u.mem_limit_bytes ? " of " + mib(u.mem_limit_bytes) : "")],
    u.mem_peak_bytes && ["memory peak", mib(u.mem_peak_bytes)],
    ["processes", u.processes],
    u.cpu_throttled_periods && ["cpu throttled", `${u.cpu_throttled_periods} of ${u.cpu_periods} periods`],
    u.oom_kills && ["OOM kills", u.oom_kills],
    ["isolator", u.isolator],
    ["measured", when(u.timestamp_unix_ms)],
  ]));
}

async function loadSandbox(el, agent, fw, task) {
  let files;
  try {
    files = await api(sandboxURL(agent, fw, task));
  } catch (e) {
    el.replaceChildren(h("p", {class: "muted"}, "sandbox not available: " + e.message));
    return;
  }
  const viewer = h("div", {id: "viewer"});
  el.replaceChildren(table(["file", "size", "modified", ""], files.map(f => [
    f.dir ? f.name + "/" : h("a", {href: "javascript:void 0", "data-file": f.name, onclick: () => openFile(viewer, agent, fw, task, f.name)}, f.name),
    f.size, when(f.mtime), f.dir ? "" : h("a", {href: sandboxURL(agent, fw, task, f.name) + "?download=1"}, "download")])), viewer);
  const stdout = files.find(f => f.name === "stdout");
  if (stdout) openFile(viewer, agent, fw, task, "stdout");
}

// openFile shows a file and, while "follow" is checked, keeps appending
// what is written to it, paging with offset/length as Mesos' /files/read.
let follower = null;
async function openFile(viewer, agent, fw, task, name) {
  if (follower) clearTimeout(follower);
  const pre = h("pre", {class: "viewer", id: "viewer-" + name});
  const follow = h("input", {type: "checkbox", id: "follow", checked: true});
  viewer.replaceChildren(h("p", {}, h("strong", {}, name), " ", h("label", {}, follow, " follow")), pre);
  const tail = 64 * 1024;
  let offset = 0;
  const size = async () => Number((await fetch(sandboxURL(agent, fw, task, name) + "?length=0")).headers.get("X-Corral-File-Size") || 0);
  try {
    offset = Math.max(0, (await size()) - tail);
  } catch (e) { showError(e); return; }
  const poll = async () => {
    if (!document.body.contains(pre)) return;
    try {
      for (;;) {
        const r = await fetch(sandboxURL(agent, fw, task, name) + "?offset=" + offset);
        if (!r.ok) throw new Error(`${name}: ${r.status}`);
        const chunk = await r.text();
        const n = Number(r.headers.get("Content-Length") || chunk.length);
        if (chunk) {
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(chunk);
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        offset += n;
        if (n < 1 << 20) break;
      }
    } catch (e) { showError(e); }
    if (follow.checked) follower = setTimeout(poll, 1000);
  };
  follow.addEventListener("change", () => { if (follow.checked) poll(); });
  poll();
}

// ---- router ----

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(qs || "");
  switch (parts[0]) {
    case undefined: return {page: "overview", args: []};
    case "agents": return parts[1] ? {page: "agent", nav: "agents", args: [parts[1]]} : {page: "agents", args: []};
    case "frameworks": return parts[1] ? {page: "framework", nav: "frameworks", args: [parts[1]]} : {page: "frameworks", args: []};
    case "tasks": return parts[2] ? {page: "task", nav: "tasks", args: [parts[1], parts[2]]} : {page: "tasks", args: [null, query]};
    case "roles": return {page: "roles", args: []};
    case "allocator": return {page: "allocator", args: []};
  }
  return {page: "overview", args: []};
}

let rendering = false;
async function render(full) {
  if (rendering) return;
  const r = route();
  // The task page owns a live file viewer; refreshing it would reset it.
  if (!full && r.page === "task") return;
  rendering = true;
  try {
    const content = await pages[r.page](...r.args);
    const main = document.getElementById("main");
    const focused = document.activeElement && document.activeElement.id;
    main.replaceChildren(...[content].flat(3).filter(Boolean));
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === (r.nav || r.page));
    showError(null);
  } catch (e) {
    showError(e);
  } finally {
    rendering = false;
  }
}

async function header() {
  try {
    const st = await api("/api/v1/state");
    document.getElementById("master").textContent = st.master_id;
  } catch (e) { /* render reports errors */ }
}

window.addEventListener("hashchange", () => render(true));
header();
render(true);
setInterval(() => render(false), 3000);
