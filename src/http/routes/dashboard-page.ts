/**
 * The dashboard's page, whole: markup, style and script in one answer, so
 * that it works with no build step and no network beyond the node. The
 * script polls /ui/cluster every two seconds and computes request rates and
 * p99 latency of client requests from the difference between two polls
 * (counters from /v0/status, the latency histogram from /metrics; a counter
 * that went down was reset by a restart). It writes values with
 * textContent only: nothing a member returns is parsed as markup.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ringkv</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d232a; background: #f6f7f9; }
  body { margin: 1.5rem 2rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  .sub { color: #5b6570; font-size: .9rem; margin-bottom: 1rem; }
  .cards { display: flex; gap: 1rem; flex-wrap: wrap; margin-bottom: 1rem; }
  .card { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
  .card .label { color: #5b6570; font-size: .8rem; }
  .card .value { font-size: 1.4rem; font-variant-numeric: tabular-nums; }
  table { border-collapse: collapse; background: #fff; border: 1px solid #dde1e6; width: 100%; }
  th, td { padding: .45rem .7rem; border-bottom: 1px solid #eceef1; text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  th { background: #eef1f4; font-weight: 600; font-size: .85rem; }
  th:first-child, td:first-child, td.state { text-align: left; }
  .state span { border-radius: 4px; padding: .1rem .45rem; font-size: .85rem; }
  .up span { background: #d8f3dc; color: #1b5e20; }
  .down span { background: #fde2e1; color: #a4161a; }
  .leaving span, .starting span { background: #fff3cd; color: #7a5a00; }
  .unknown span { background: #e9ecef; color: #495057; }
  .note { color: #a4161a; font-size: .8rem; text-align: left; white-space: normal; }
  footer { color: #5b6570; font-size: .8rem; margin-top: .8rem; }
</style>
</head>
<body>
<h1>ringkv</h1>
<div class="sub">Seen from <span id="node">…</span> · updated <span id="updated">never</span></div>
<div class="cards">
  <div class="card"><div class="label">Members up</div><div class="value" id="members-up">–</div></div>
  <div class="card"><div class="label">Requests/s</div><div class="value" id="total-rate">–</div></div>
  <div class="card"><div class="label">Hints pending</div><div class="value" id="total-hints">–</div></div>
  <div class="card"><div class="label">Disk (tables)</div><div class="value" id="total-disk">–</div></div>
</div>
<table>
  <thead><tr>
    <th>Member</th><th>State</th><th>Requests/s</th><th>p99 ms</th><th>Hints pending</th>
    <th>Anti-entropy rounds</th><th>Keys repaired</th><th>Disk (tables)</th><th>Memory (RSS)</th><th>Uptime</th>
  </tr></thead>
  <tbody id="members"></tbody>
</table>
<footer>Requests/s and p99 cover client requests (get, put, delete, range) over the last poll interval (2 s). State is how the node above sees each member.</footer>
<script>
"use strict";
const LATENCY = "ringkv_http_request_duration_seconds_bucket";
const POLL_MS = 2000;
const CLIENT_OP = /[{,]op="(get|put|delete|range)"/;
let previous = new Map();

function fmtBytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function fmtDuration(ms) {
  if (typeof ms !== "number") return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function fmtNumber(n, digits) {
  return typeof n === "number" && Number.isFinite(n) ? n.toFixed(digits) : "–";
}
/** Hints waiting, over every peer: pending is { peer: { entries, bytes } }. */
function hintEntries(pending) {
  let total = 0;
  for (const value of Object.values(pending || {})) if (value && typeof value.entries === "number") total += value.entries;
  return total;
}
function requestTotal(status) {
  const r = status && status.requests;
  return r ? r.get + r.put + r.delete + r.range : undefined;
}
/** How much a counter grew between two polls; one that went down was reset (the member restarted) and counts from 0. */
function increase(before, after) {
  return after >= before ? after - before : after;
}
/**
 * Cumulative counts per upper bound of the latency histogram, summed over the
 * client requests' label sets (the operations Requests/s counts): not the
 * dashboard's own polls, scrapes and internode requests, which would set the
 * p99 of a quiet node (a poll waits up to 1.5 s for a hung member).
 */
function latencyBuckets(text) {
  const buckets = new Map();
  if (typeof text !== "string") return buckets;
  for (const line of text.split("\\n")) {
    if (!line.startsWith(LATENCY + "{") || !CLIENT_OP.test(line)) continue;
    const le = /le="([^"]+)"/.exec(line);
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (le === null || !Number.isFinite(value)) continue;
    const bound = le[1] === "+Inf" ? Infinity : Number(le[1]);
    buckets.set(bound, (buckets.get(bound) || 0) + value);
  }
  return buckets;
}
/** The p99 in ms over the requests between two scrapes: the upper bound of the bucket that holds it. */
function p99Ms(before, after) {
  if (!before || after.size === 0) return undefined;
  const bounds = [...after.keys()].sort((a, b) => a - b);
  // A member restarted between the polls counts from zero again: its counts since then are all of them.
  if ((after.get(Infinity) || 0) < (before.get(Infinity) || 0)) before = new Map();
  const total = (after.get(Infinity) || 0) - (before.get(Infinity) || 0);
  if (total <= 0) return undefined;
  for (const bound of bounds) {
    if ((after.get(bound) || 0) - (before.get(bound) || 0) >= 0.99 * total) {
      return bound === Infinity ? Infinity : bound * 1000;
    }
  }
  return undefined;
}
function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.appendChild(td);
  return td;
}
function render(view) {
  document.getElementById("node").textContent = view.node;
  document.getElementById("updated").textContent = new Date(view.atMs).toLocaleTimeString();
  const body = document.getElementById("members");
  body.replaceChildren();
  const next = new Map();
  let up = 0, rateTotal = 0, haveRate = false, hintsTotal = 0, diskTotal = 0;
  for (const member of view.members) {
    const status = member.status;
    const store = status && status.store;
    const engine = store && store.engine;
    const state = member.link === "up" && status && status.ready === false ? "starting" : member.link;
    if (state === "up") up++;
    const before = previous.get(member.url);
    const sample = { atMs: view.atMs, requests: requestTotal(status), buckets: latencyBuckets(member.metrics) };
    next.set(member.url, sample);
    let rate;
    if (before && sample.requests !== undefined && before.requests !== undefined && view.atMs > before.atMs) {
      rate = increase(before.requests, sample.requests) / ((view.atMs - before.atMs) / 1000);
      rateTotal += rate;
      haveRate = true;
    }
    const hints = store && store.hints ? hintEntries(store.hints.pending) : undefined;
    if (hints !== undefined) hintsTotal += hints;
    if (engine && typeof engine.tableBytes === "number") diskTotal += engine.tableBytes;
    const row = document.createElement("tr");
    row.dataset.member = member.url;
    row.dataset.state = state;
    const name = cell(row, member.url + (member.self ? " (this node)" : ""));
    if (member.statusError) {
      const note = document.createElement("div");
      note.className = "note";
      note.textContent = "unreachable: " + member.statusError;
      name.appendChild(note);
    }
    const stateCell = cell(row, "", "state " + state);
    const badge = document.createElement("span");
    badge.textContent = state;
    stateCell.appendChild(badge);
    cell(row, fmtNumber(rate, 1));
    cell(row, fmtNumber(p99Ms(before && before.buckets, sample.buckets), 1));
    cell(row, hints === undefined ? "–" : String(hints));
    const ae = store && store.antiEntropy;
    cell(row, ae ? String(ae.rounds) : "–");
    cell(row, ae ? String(ae.pulled + ae.pushed) : "–");
    cell(row, fmtBytes(engine && engine.tableBytes));
    cell(row, fmtBytes(status && status.memory && status.memory.rss));
    cell(row, fmtDuration(status && status.uptimeMs));
    body.appendChild(row);
  }
  previous = next;
  document.getElementById("members-up").textContent = up + " / " + view.members.length;
  document.getElementById("total-rate").textContent = haveRate ? rateTotal.toFixed(1) : "–";
  document.getElementById("total-hints").textContent = String(hintsTotal);
  document.getElementById("total-disk").textContent = fmtBytes(diskTotal);
}
/**
 * A poll that failed leaves the last rows for reference, but nothing on the
 * page may still read as live: every state becomes unknown, the totals are
 * cleared, and the next rates start from the next answer.
 */
function showFailed(why) {
  document.getElementById("updated").textContent = "failed: " + why;
  for (const row of document.querySelectorAll("#members tr")) {
    row.dataset.state = "unknown";
    const state = row.querySelector("td.state");
    state.className = "state unknown";
    state.firstChild.textContent = "unknown";
  }
  for (const id of ["members-up", "total-rate", "total-hints", "total-disk"]) document.getElementById(id).textContent = "–";
  previous = new Map();
}
async function poll() {
  try {
    // The node answers within its 1.5 s per member; one that does not is as good as down.
    const response = await fetch("/ui/cluster", { cache: "no-store", signal: AbortSignal.timeout(POLL_MS * 3) });
    if (!response.ok) showFailed("the node answered " + response.status);
    else {
      let view;
      try {
        view = await response.json();
      } catch (err) {
        view = undefined;
      }
      if (view && Array.isArray(view.members)) render(view);
      else showFailed("the node's answer is not a cluster view");
    }
  } catch (err) {
    showFailed("node unreachable");
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
`;
