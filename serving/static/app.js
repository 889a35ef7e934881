// memsvc memory explorer: plain JS over the REST API, no build step.
// URL parameters (?user_id=..&q=..&status=..&select=first) make a view linkable and testable.
// status: which memories a listing shows (active, quarantined for review, or all).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const KIND_COLOURS = { episode: "#667085", fact: "#3857d6", preference: "#c11574", event: "#dc6803",
  procedure: "#079455", summary: "#6941c6", profile: "#0e9384" };
let allMemories = [];  // every memory of the user (for the timeline and the graph)

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error((data && data.error && data.error.message) || res.statusText);
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node[k] = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const TRUST_NAMES = { 1: "external", 2: "agent", 3: "user" };
const day = (iso) => (iso ? iso.slice(0, 10) : "—");
const when = (m) => m.valid_from || m.created_at;
function validity(m) {
  return `${day(m.valid_from)} → ${m.valid_to ? day(m.valid_to) : (m.invalidated_at ? "retired " + day(m.invalidated_at) : "now")}`;
}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function loadAll(user, minTrust) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const q = new URLSearchParams({ user_id: user, limit: "500", include_inactive: "true", min_trust: minTrust });
    if (cursor) q.set("cursor", cursor);
    const data = await api("GET", "/v1/memories?" + q);
    items.push(...data.items);
    if (!data.next_cursor) break;
    cursor = data.next_cursor;
  }
  return items;
}

async function run(select) {
  const user = $("user").value.trim();
  const query = $("query").value.trim();
  if (!user) { setStatus("Enter a user id.", true); return; }
  const show = $("show").value;
  const minTrust = $("trust").value;
  const params = new URLSearchParams({ user_id: user });
  if (query) params.set("q", query);
  if (show !== "active") params.set("status", show);
  if (minTrust !== "external") params.set("min_trust", minTrust);
  history.replaceState(null, "", "?" + params);
  setStatus("Loading…");
  try {
    allMemories = await loadAll(user, minTrust);
    let hits;
    if (query) {
      const res = await api("POST", "/v1/search", { query, user_id: user, limit: 20, min_trust: minTrust });
      hits = res.results.map((r) => ({ memory: r.memory, score: r.score, ranks: r.channel_ranks }));
      setStatus(`${hits.length} results in ${Math.round(res.timing_ms.total)} ms`);
    } else {
      hits = allMemories.filter((m) => show === "all" || m.status === show).map((m) => ({ memory: m }));
      setStatus(`${hits.length} ${show === "all" ? "" : show + " "}memories`);
    }
    renderResults(hits);
    renderTimeline(allMemories, new Set(hits.map((h) => h.memory.id)));
    if (select === "first" && hits.length) showDetail(hits[0].memory.id);
  } catch (err) {
    setStatus("Error: " + err.message, true);
  }
}

function renderResults(hits) {
  const list = $("results");
  list.replaceChildren();
  $("count").textContent = `(${hits.length})`;
  for (const hit of hits) {
    const m = hit.memory;
    const found = hit.ranks ? Object.entries(hit.ranks).map(([c, r]) => `${c}#${r}`).join(" ") : "";
    const item = el("li", { class: `memory status-${m.status}`, "data-id": m.id, onclick: () => showDetail(m.id) },
      el("div", {}, el("span", { class: `kind ${m.kind}` }, m.kind), m.text),
      el("div", { class: "meta" },
        el("span", {}, "valid " + validity(m)),
        el("span", {}, m.status),
        el("span", { class: `trust trust-${m.trust}` }, TRUST_NAMES[m.trust] || `trust ${m.trust}`),
        hit.score !== undefined ? el("span", {}, `score ${hit.score.toFixed(4)} · ${found}`) : "",
        ...m.entities.map((e) => el("span", { class: "entity" }, e))));
    list.append(item);
  }
}

function renderTimeline(memories, highlighted) {
  const svg = $("timeline");
  svg.replaceChildren();
  if (!memories.length) { $("timeline-range").textContent = ""; return; }
  const times = memories.map((m) => Date.parse(when(m)));
  const lo = Math.min(...times), hi = Math.max(...times);
  const width = svg.clientWidth || 600, pad = 20, span = Math.max(hi - lo, 1);
  $("timeline-range").textContent = `${day(new Date(lo).toISOString())} – ${day(new Date(hi).toISOString())}`;
  svg.append(svgEl("line", { x1: pad, x2: width - pad, y1: 60, y2: 60, stroke: "#c0c5d0" }));
  memories.forEach((m, i) => {
    const x = pad + ((times[i] - lo) / span) * (width - 2 * pad);
    const dot = svgEl("circle", { cx: x, cy: 60 - (i % 4) * 11, r: highlighted.has(m.id) ? 6 : 3.5,
      fill: KIND_COLOURS[m.kind] || "#999", opacity: m.status === "active" ? 0.9 : 0.35,
      class: "tl-dot", "data-id": m.id });
    dot.append(svgEl("title", {}, `${day(when(m))} ${m.kind}: ${m.text}`));
    dot.addEventListener("click", () => showDetail(m.id));
    svg.append(dot);
  });
  svg.append(svgEl("text", { x: pad, y: 82 }, day(new Date(lo).toISOString())));
  svg.append(svgEl("text", { x: width - pad, y: 82, "text-anchor": "end" }, day(new Date(hi).toISOString())));
}

function graphFromEntities(memory) {
  // Fallback when the server has no graph endpoint: link memories sharing entity names.
  const nodes = [{ id: "m:" + memory.id, type: "memory", label: memory.text, kind: memory.kind }];
  const edges = [];
  for (const e of memory.entities) {
    nodes.push({ id: "e:" + e, type: "entity", label: e });
    edges.push({ source: "m:" + memory.id, target: "e:" + e, label: "mentions" });
  }
  for (const m of allMemories) {
    if (m.id === memory.id || m.status !== "active") continue;
    const shared = m.entities.filter((e) => memory.entities.includes(e));
    if (!shared.length) continue;
    nodes.push({ id: "m:" + m.id, type: "memory", label: m.text, kind: m.kind });
    for (const e of shared) edges.push({ source: "m:" + m.id, target: "e:" + e, label: "mentions" });
  }
  return { center: "m:" + memory.id, nodes, edges };
}

function renderGraph(graph) {
  // Radial layout: the memory in the middle, its entities on a ring, other memories outside.
  const svg = $("graph");
  svg.replaceChildren();
  const width = svg.clientWidth || 500, height = 320, cx = width / 2, cy = height / 2;
  const entities = graph.nodes.filter((n) => n.type === "entity").slice(0, 16);
  const others = graph.nodes.filter((n) => n.type === "memory" && n.id !== graph.center).slice(0, 14);
  const ring = (n, r, i) => [cx + r * Math.cos((2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2),
    cy + r * Math.sin((2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2)];
  const pos = new Map([[graph.center, [cx, cy]]]);
  entities.forEach((n, i) => pos.set(n.id, ring(entities.length, 70, i)));
  others.forEach((n, i) => pos.set(n.id, ring(others.length, 122, i + 0.5)));
  for (const e of graph.edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const relation = e.label !== "mentions";
    svg.append(svgEl("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: relation ? "g-relation" : "g-link",
      stroke: relation ? "#c11574" : "#d0d5dd", "stroke-width": relation ? 2 : 1 }));
    if (relation) svg.append(svgEl("text", { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 3, "text-anchor": "middle", fill: "#c11574" }, e.label));
  }
  for (const n of others) {
    const [x, y] = pos.get(n.id);
    const node = svgEl("circle", { cx: x, cy: y, r: 6, fill: KIND_COLOURS[n.kind] || "#999", class: "g-memory", "data-id": n.id.slice(2) });
    node.append(svgEl("title", {}, n.label));
    node.addEventListener("click", () => showDetail(n.id.slice(2)));
    svg.append(node);
    svg.append(svgEl("text", { x, y: y + 16, "text-anchor": "middle" }, n.label.slice(0, 22) + (n.label.length > 22 ? "…" : "")));
  }
  for (const n of entities) {
    const [x, y] = pos.get(n.id);
    svg.append(svgEl("rect", { x: x - 4, y: y - 4, width: 8, height: 8, fill: "#293a8f", class: "g-entity" }));
    svg.append(svgEl("text", { x, y: y - 8, "text-anchor": "middle", "font-weight": "600" }, n.label));
  }
  const centre = graph.nodes.find((n) => n.id === graph.center);
  svg.append(svgEl("circle", { cx, cy, r: 10, fill: KIND_COLOURS[centre && centre.kind] || "#999", class: "g-center" }));
  if (!entities.length) {
    svg.append(svgEl("text", { x: cx, y: cy + 30, "text-anchor": "middle" }, "this memory names no entities"));
  }
}

async function showDetail(id) {
  document.querySelectorAll(".memory").forEach((n) => n.classList.toggle("selected", n.dataset.id === id));
  try {
    const [m, hist] = await Promise.all([
      api("GET", `/v1/memories/${encodeURIComponent(id)}`),
      api("GET", `/v1/memories/${encodeURIComponent(id)}/history`),
    ]);
    $("hint").hidden = true;
    $("detail").hidden = false;
    $("detail-id").textContent = m.id;
    $("detail-text").replaceChildren(el("span", { class: `kind ${m.kind}` }, m.kind), m.text);
    const p = m.provenance;
    const fields = [
      ["status", m.status + (m.superseded_by ? ` (by ${m.superseded_by})` : "")],
      ["valid", validity(m)],
      ["learnt", m.created_at.replace("T", " ").slice(0, 19)],
      ["scope", Object.entries(m.scope).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(", ")],
      ["extractor", `${p.extractor} v${p.extractor_version} · confidence ${p.confidence}`],
      ["triple", [m.subject, m.predicate, m.object].filter(Boolean).join(" · ") || "—"],
      ["entities", m.entities.join(", ") || "—"],
      ["importance", `${m.importance} · used ${m.access_count}×`],
      ["version", m.version],
    ];
    const held = m.status === "quarantined";
    $("review").hidden = !held;
    if (held) {
      $("review-reasons").textContent = ((m.metadata.quarantine || {}).reasons || []).join(", ");
      $("review-release").onclick = () => review(m.id, "release");
      $("review-delete").onclick = () => review(m.id, "delete");
    }
    $("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]));
    $("history").replaceChildren(...hist.map((h) => el("li", { class: "history-entry" },
      el("span", { class: "event" }, h.event), ` ${h.created_at.replace("T", " ").slice(0, 19)} by ${h.actor}`,
      h.reason ? ` — ${h.reason}` : "", h.new && h.new.text ? el("div", {}, "→ " + h.new.text) : "")));
    let graph;
    try {
      graph = await api("GET", `/v1/memories/${encodeURIComponent(id)}/graph`);
    } catch (err) {
      graph = graphFromEntities(m);
    }
    renderGraph(graph);
    const msgs = await api("GET", "/v1/messages?" + new URLSearchParams({ user_id: m.scope.user_id || "", limit: "100000" }));
    const wanted = new Set(p.source_message_ids);
    $("sources").replaceChildren(...msgs.filter((x) => wanted.has(x.id)).map((x) =>
      el("li", { class: "source" }, `[${day(x.timestamp)}] ${x.role}${x.name ? " (" + x.name + ")" : ""}: ${x.content}`)));
  } catch (err) {
    setStatus("Error: " + err.message, true);
  }
}

async function review(id, action) {
  try {
    await api("POST", `/v1/memories/${encodeURIComponent(id)}/review`, { action });
    await run();
    showDetail(id);
  } catch (err) {
    setStatus("Error: " + err.message, true);
  }
}

$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
$("key").value = localStorage.getItem("memsvc-key") || "";
$("key").addEventListener("change", () => localStorage.setItem("memsvc-key", $("key").value.trim()));

const initial = new URLSearchParams(location.search);
if (initial.get("key")) $("key").value = initial.get("key");
if (initial.get("user_id")) {
  $("user").value = initial.get("user_id");
  $("query").value = initial.get("q") || "";
  if (initial.get("status")) $("show").value = initial.get("status");
  if (initial.get("min_trust")) $("trust").value = initial.get("min_trust");
  run(initial.get("select"));
}
