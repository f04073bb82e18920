// The p2pnet bootstrap server dashboard: plain JavaScript (an ES module), no build step, no
// third-party code.  The login, the API calls with the CSRF token, the escaping and the table
// helpers are common.js, shared with the node dashboard.
//
// Whatever a node chose (its identifier, its display name) reaches the page only through
// textContent, never parsed as HTML, with its controls escaped (visible).
"use strict";

import {
  $, Dashboard, ago, button, definitions, element, fill, row, visible,
} from "/common.js";

const TASK_TYPES = {0: "BlockAndRemovePeer", 1: "BlockIP", 3: "PingPeer", 4: "DisconnectPeer",
                    5: "AuthorizePeer", 14: "BootstrapInitialization"};
const page = new Dashboard({ refresh, unreachable: "the server does not answer" });

function clock(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

// -- Acting on peers ----------------------------------------------------------------------

async function act(path, body, what) {
  const result = await page.api("POST", path, body);
  if (result.ok) page.notice(visible(result.data.done || what));
  else page.reportError(`${what} failed`, result);
  refresh();
}

// -- Showing the state --------------------------------------------------------------------

function showOverview(state) {
  $("mode").textContent = `${state.mode} mode`;
  const blocked = state.blocked;
  definitions($("status-list"), [
    ["Mode", state.mode],
    ["Authority key", state.authority_key || "none (trustless)"],
    ["p2pnet_tx nodes (/v1)", state.counts.v1],
    [".NET clients", state.counts.dotnet],
    ["Queued tasks", state.counts.tasks],
    ["Blocked", `${blocked.identifiers.length} identifiers, ` +
                `${blocked.addresses.length + blocked.ips.length} addresses`],
    ["Peers forgotten after", `${state.ttl} s without a heartbeat`],
  ]);
  showHistory(state.history);
}

function showHistory(points) {
  const box = $("history");
  box.replaceChildren();
  if (points.length === 0) return;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 40");
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...points.map((p) => p[1]));
  const first = points[0][0], span = Math.max(60, points[points.length - 1][0] - first);
  const coords = points.map((p) => `${((p[0] - first) / span) * 100},${38 - (p[1] / max) * 36}`);
  if (coords.length === 1) coords.push(`100,${coords[0].split(",")[1]}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", coords.join(" "));
  svg.append(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = `peak ${max}, now ${points[points.length - 1][1]}`;
  svg.append(title);
  box.append(svg, element("p", `now ${points[points.length - 1][1]}, peak ${max}, ` +
                               `since ${clock(first)}`, "hint"));
}

function showPeers(state) {
  fill($("peer-rows"), state.peers.map((peer) => {
    const id = visible(peer.identifier);
    const name = peer.display_name ? `${visible(peer.display_name)} (${id})` : id;
    const actions = element("td");
    actions.append(
      button("Disconnect", () => act("/api/disconnect", { identifier: peer.identifier },
                                     "Disconnect"), "disconnect"),
      button("Block", () => act("/api/block", { identifier: peer.identifier }, "Block"),
             "block danger"));
    return row([element("td", name, "peer"), peer.api, `${peer.ip}:${peer.port}`,
                element("td", ago(peer.registered, state.server_time), "when"),
                element("td", ago(peer.last_seen, state.server_time), "when last-seen"),
                actions], { identifier: peer.identifier });
  }), $("no-peers"));
}

function showTasks(state) {
  fill($("task-rows"), state.tasks.map((task) => row([
    task.id.split("/")[0], TASK_TYPES[task.task_type] || task.task_type,
    element("td", visible(task.recipient), "peer"), element("td", clock(task.expires), "when"),
  ])), $("no-tasks"));
}

function showBlocks(state) {
  const values = state.blocked.identifiers.map((v) => ["identifier", v])
    .concat(state.blocked.ips.map((v) => ["IP", v]))
    .concat(state.blocked.addresses.map((v) => ["address", v]));
  fill($("block-list"), values.map(([kind, value]) => {
    const item = element("li", `${kind} ${visible(value)}`);
    item.dataset.value = value;
    item.append(button("Unblock", () => act("/api/unblock", { value }, "Unblock")));
    return item;
  }), $("no-blocks"));
}

function showAudit(state) {
  fill($("audit-list"), state.audit.slice(0, 50).map((entry) => {
    const item = element("li");
    item.dataset.action = entry.action;
    item.append(element("span", clock(entry.time) + " ", "when"),
                element("span", visible(`${entry.action} ${entry.target} by ${entry.actor}`)),
                element("span", entry.detail ? ` (${visible(entry.detail)})` : "", "hint"));
    return item;
  }), $("no-audit"));
}

async function refresh() {
  if (!page.loggedInNow) return;
  const result = await page.api("GET", "/api/state");
  if (!result.ok) {
    if (result.status !== 401) page.reportError("Cannot read the state", result);
    return;
  }
  const state = result.data;
  showOverview(state);
  showPeers(state);
  showTasks(state);
  showBlocks(state);
  showAudit(state);
}

page.start();
