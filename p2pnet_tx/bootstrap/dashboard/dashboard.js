// The p2pnet bootstrap server dashboard: plain JavaScript, no build step, no third-party code.
//
// Whatever a node chose (its identifier, its display name) reaches the page only through
// textContent, never parsed as HTML.  Requests that change something carry the session's
// CSRF token; the session itself is an HttpOnly cookie that this script cannot read.
"use strict";

(() => {
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const TASK_TYPES = {0: "BlockAndRemovePeer", 1: "BlockIP", 3: "PingPeer", 4: "DisconnectPeer",
                      5: "AuthorizePeer", 14: "BootstrapInitialization"};
  let csrf = null;
  let timer = null;

  async function api(method, path, body) {
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = csrf || "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { status: 0, ok: false, data: { error: "the server does not answer" } };
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (response.status === 401 && path !== "/session") loggedOut("Your session has ended: log in again.");
    return { status: response.status, ok: response.ok, data: data || {} };
  }

  function notice(text, isError) {
    const p = $("notice");
    p.textContent = text || "";
    p.className = isError ? "error" : "";
    p.hidden = !text;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function ago(seconds, now) {
    const delta = Math.max(0, Math.round(now - seconds));
    if (delta < 2) return "just now";
    if (delta < 120) return `${delta} s ago`;
    if (delta < 7200) return `${Math.round(delta / 60)} min ago`;
    return `${Math.round(delta / 3600)} h ago`;
  }

  function clock(seconds) {
    return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  // -- Logging in and out -----------------------------------------------------------------

  function loggedOut(message) {
    csrf = null;
    if (timer !== null) { clearInterval(timer); timer = null; }
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    notice(message, Boolean(message));
    $("token").focus();
  }

  function loggedIn(token) {
    csrf = token;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    refresh();
    if (timer === null) timer = setInterval(refresh, POLL_MS);
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await api("POST", "/session", { token: $("token").value });
    $("token").value = "";
    if (result.ok) { notice(""); loggedIn(result.data.csrf); }
    else notice(`Not logged in: ${result.data.error || "HTTP " + result.status}`, true);
  });

  $("logout").addEventListener("click", async () => {
    await api("DELETE", "/session");
    loggedOut("Logged out.");
  });

  // -- Acting on peers --------------------------------------------------------------------

  async function act(path, body, what) {
    const result = await api("POST", path, body);
    if (result.ok) notice(result.data.done || what);
    else notice(`${what} failed: ${result.data.error || "HTTP " + result.status}`, true);
    refresh();
  }

  // -- Showing the state ------------------------------------------------------------------

  function showOverview(state) {
    $("mode").textContent = `${state.mode} mode`;
    const list = $("status-list");
    list.replaceChildren();
    const rows = [
      ["Mode", state.mode],
      ["Authority key", state.authority_key || "none (trustless)"],
      ["p2pnet_tx nodes (/v1)", state.counts.v1],
      [".NET clients", state.counts.dotnet],
      ["Queued tasks", state.counts.tasks],
      ["Blocked", `${state.blocked.identifiers.length} identifiers, ${state.blocked.addresses.length + state.blocked.ips.length} addresses`],
      ["Peers forgotten after", `${state.ttl} s without a heartbeat`],
    ];
    for (const [name, value] of rows) {
      list.append(el("dt", name), el("dd", value));
    }
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
    box.append(svg, el("p", `now ${points[points.length - 1][1]}, peak ${max}, since ${clock(first)}`, "hint"));
  }

  function showPeers(state) {
    const rows = $("peer-rows");
    rows.replaceChildren();
    for (const peer of state.peers) {
      const tr = document.createElement("tr");
      tr.dataset.identifier = peer.identifier;
      const name = peer.display_name ? `${peer.display_name} (${peer.identifier})` : peer.identifier;
      tr.append(el("td", name, "peer"), el("td", peer.api), el("td", `${peer.ip}:${peer.port}`),
                el("td", ago(peer.registered, state.server_time), "when"),
                el("td", ago(peer.last_seen, state.server_time), "when last-seen"));
      const actions = el("td");
      const disconnect = el("button", "Disconnect", "disconnect");
      disconnect.type = "button";
      disconnect.addEventListener("click", () =>
        act("/api/disconnect", { identifier: peer.identifier }, "Disconnect"));
      const block = el("button", "Block", "block danger");
      block.type = "button";
      block.addEventListener("click", () =>
        act("/api/block", { identifier: peer.identifier }, "Block"));
      actions.append(disconnect, block);
      tr.append(actions);
      rows.append(tr);
    }
    $("no-peers").hidden = state.peers.length > 0;
  }

  function showTasks(state) {
    const rows = $("task-rows");
    rows.replaceChildren();
    for (const task of state.tasks) {
      const tr = document.createElement("tr");
      tr.append(el("td", task.id.split("/")[0]),
                el("td", TASK_TYPES[task.task_type] || task.task_type),
                el("td", task.recipient, "peer"), el("td", clock(task.expires), "when"));
      rows.append(tr);
    }
    $("no-tasks").hidden = state.tasks.length > 0;
  }

  function showBlocks(state) {
    const list = $("block-list");
    list.replaceChildren();
    const values = state.blocked.identifiers.map((v) => ["identifier", v])
      .concat(state.blocked.ips.map((v) => ["IP", v]))
      .concat(state.blocked.addresses.map((v) => ["address", v]));
    for (const [kind, value] of values) {
      const li = el("li", `${kind} ${value}`);
      li.dataset.value = value;
      const button = el("button", "Unblock");
      button.type = "button";
      button.addEventListener("click", () => act("/api/unblock", { value }, "Unblock"));
      li.append(button);
      list.append(li);
    }
    $("no-blocks").hidden = values.length > 0;
  }

  function showAudit(state) {
    const list = $("audit-list");
    list.replaceChildren();
    for (const entry of state.audit.slice(0, 50)) {
      const li = el("li");
      li.dataset.action = entry.action;
      li.append(el("span", clock(entry.time) + " ", "when"),
                el("span", `${entry.action} ${entry.target} by ${entry.actor}`),
                el("span", entry.detail ? ` (${entry.detail})` : "", "hint"));
      list.append(li);
    }
    $("no-audit").hidden = state.audit.length > 0;
  }

  async function refresh() {
    if (csrf === null) return;
    const result = await api("GET", "/api/state");
    if (!result.ok) {
      if (result.status !== 401) notice(`Cannot read the state: ${result.data.error || "HTTP " + result.status}`, true);
      return;
    }
    const state = result.data;
    showOverview(state);
    showPeers(state);
    showTasks(state);
    showBlocks(state);
    showAudit(state);
  }

  async function start() {
    const result = await api("GET", "/session");
    if (result.ok) loggedIn(result.data.csrf);
    else loggedOut("");
  }

  start();
})();
