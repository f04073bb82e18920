// The p2pnet node dashboard: plain JavaScript, no build step, no third-party code.
//
// Everything a peer chose (its identifier, its display name, its messages) reaches the page
// only through textContent, never parsed as HTML: no markup is ever built from strings.
// Requests that change something carry the session's CSRF token; the session itself is an
// HttpOnly cookie that this script cannot read.
"use strict";

(() => {
  const POLL_MS = 2000;
  const MAX_MESSAGES_SHOWN = 200;
  const $ = (id) => document.getElementById(id);

  // What p2pnet-ctl escapes, escaped alike: a backslash, C0 and C1 controls, line and paragraph
  // separators, bidirectional controls and lone surrogates, so that a peer's text cannot
  // reorder or hide what the page shows around it.
  const UNSAFE = new RegExp(
    "[\\\\\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029" +
    "\\u202a-\\u202e\\u2066-\\u2069]" +
    "|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]", "g");

  function visible(text) {
    return String(text).replace(UNSAFE, (char) => {
      if (char === "\\") return "\\\\";
      const code = char.charCodeAt(0);
      return code <= 0xff ? "\\x" + code.toString(16).padStart(2, "0")
                          : "\\u" + code.toString(16).padStart(4, "0");
    });
  }

  let csrf = null;
  let lastSeq = 0;
  let timer = null;

  // -- Talking to the node ----------------------------------------------------------------

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
      return { status: 0, ok: false, data: { error: "the node does not answer: is it running?" } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (response.status === 401 && path !== "/session") {
      loggedOut("Your session has ended: log in again.");
    }
    return { status: response.status, ok: response.ok, data: data || {} };
  }

  // An endpoint this node does not have answers 404 "no such resource"; any other 404 is the
  // endpoint's own answer (no such peer, not blocked, ...).
  function missing(result) {
    return result.status === 404 && result.data.error === "no such resource";
  }

  function notice(text, isError) {
    const p = $("notice");
    p.textContent = text || "";
    p.className = isError ? "error" : "";
    p.hidden = !text;
  }

  function reportError(what, result) {
    notice(`${what}: ${result.data.error || "HTTP " + result.status}`, true);
  }

  // -- Logging in and out -----------------------------------------------------------------

  function loggedOut(message) {
    csrf = null;
    if (timer !== null) clearInterval(timer);
    timer = null;
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    if (message) notice(message, true);
    $("token").focus();
  }

  function loggedIn(session) {
    csrf = session.csrf;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    refresh();
    if (timer === null) timer = setInterval(refresh, POLL_MS);
  }

  async function logIn(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    const result = await api("POST", "/session", { token });
    $("token").value = "";
    if (!result.ok) {
      reportError("Not logged in", result);
      return;
    }
    notice("");
    loggedIn(result.data);
  }

  async function logOut() {
    await api("DELETE", "/session");
    loggedOut("");
  }

  // -- Drawing what the node says ---------------------------------------------------------

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function button(label, action) {
    const node = element("button", label);
    node.type = "button";
    node.addEventListener("click", action);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "";
    if (value < 1) return `${(value * 1000).toFixed(value < 0.01 ? 2 : 1)} ms`;
    return `${value.toFixed(2)} s`;
  }

  function ago(when) {
    if (when === null || when === undefined) return "never";
    const delta = Math.max(0, Date.now() / 1000 - when);
    if (delta < 2) return "just now";
    if (delta < 120) return `${Math.round(delta)} s ago`;
    if (delta < 7200) return `${Math.round(delta / 60)} min ago`;
    return `${Math.round(delta / 3600)} h ago`;
  }

  function peerName(peer) {
    const name = visible(peer.identifier || `${peer.address}:${peer.port}`);
    return peer.display_name ? `${visible(peer.display_name)} (${name})` : name;
  }

  function drawStatus(status) {
    $("node-id").textContent = status.identifier || "";
    const list = $("status-list");
    const rows = [
      ["identifier", status.identifier],
      ["version", status.version],
      ["uptime", status.uptime === undefined ? undefined : seconds(status.uptime)],
      ["wire", status.wire],
      ["transport", status.transport],
      ["trust", status.trust],
      ["listening on", status.listen],
      ["port", status.listening_port],
    ];
    const counts = status.counts || {};
    rows.push(["peers", `${counts.active || 0} accepted, ${counts.trusted || 0} trusted, ` +
                        `${counts.pending || 0} pending, ${counts.known || 0} known`]);
    if (status.traffic) {
      rows.push(["traffic", `${status.traffic.bytes_in} B in, ${status.traffic.bytes_out} B out`]);
    }
    list.replaceChildren();
    for (const [label, value] of rows) {
      if (value === undefined || value === null || value === "") continue;
      list.append(element("dt", label), element("dd", value));
    }
  }

  function drawPeers(peers) {
    const rows = $("peer-rows");
    const select = $("send-to");
    const chosen = select.value;
    rows.replaceChildren();
    select.replaceChildren(new Option("every trusted peer", "*"));
    for (const peer of peers) {
      const row = document.createElement("tr");
      row.dataset.identifier = peer.identifier || "";
      row.append(element("td", peerName(peer), "peer"));
      row.append(element("td", `${peer.address}:${peer.port}`));
      row.append(element("td", peer.trusted ? "trusted" : "untrusted",
                         peer.trusted ? "trusted" : "untrusted"));
      row.append(element("td", peer.direction));
      const rtt = element("td", seconds(peer.rtt));
      if (peer.rtt_source) rtt.title = `measured by ${peer.rtt_source}`;
      row.append(rtt);
      row.append(element("td", ago(peer.last_seen)));
      const actions = element("td");
      if (peer.identifier) {
        actions.append(button("Block", () => block({ identifier: peer.identifier })));
      }
      row.append(actions);
      rows.append(row);
      if (peer.trusted && peer.identifier) {
        select.append(new Option(peerName(peer), peer.identifier));
      }
    }
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "*";
    $("no-peers").hidden = peers.length > 0;
  }

  function drawMessages(messages) {
    const list = $("message-list");
    for (const message of messages) {
      lastSeq = Math.max(lastSeq, message.seq);
      const item = element("li");
      item.dataset.seq = message.seq;
      item.append(element("span", `[${message.seq}]`, "seq"), " ");
      item.append(element("span", visible(message.from || "?"), "sender"));
      if (!message.trusted) item.append(element("span", "(untrusted)", "flag"));
      item.append(element("span", visible(message.message), "text"));
      list.prepend(item);
    }
    while (list.children.length > MAX_MESSAGES_SHOWN) list.lastChild.remove();
    $("no-messages").hidden = list.children.length > 0;
  }

  function drawBlocks(result) {
    const list = $("block-list");
    const note = $("blocks-note");
    list.replaceChildren();
    if (missing(result)) {
      note.textContent = "This node cannot list its blocks (GET /api/blocks answered 404): " +
        "it has no unblock API yet. Blocks are in blocked.json in its data directory.";
      note.hidden = false;
      return;
    }
    if (!result.ok) {
      note.textContent = `The blocks could not be read: ${result.data.error || result.status}`;
      note.hidden = false;
      return;
    }
    const entries = [];
    for (const ip of result.data.ips || []) entries.push({ ip });
    for (const identifier of result.data.identifiers || []) entries.push({ identifier });
    for (const entry of entries) {
      const item = element("li", entry.ip ? `IP ${visible(entry.ip)}`
                                          : `identifier ${visible(entry.identifier)}`);
      item.dataset.value = entry.ip || entry.identifier;
      item.append(button("Unblock", () => unblock(entry)));
      list.append(item);
    }
    note.textContent = "Nothing is blocked.";
    note.hidden = entries.length > 0;
  }

  function bytes(value) {
    if (typeof value !== "number" || value < 0) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  const FINISHED = new Set(["done", "refused", "failed", "cancelled"]);

  function drawTransfers(result) {
    const rows = $("transfer-rows");
    const note = $("transfers-note");
    rows.replaceChildren();
    if (missing(result)) {
      note.textContent = "This node does not transfer files (GET /api/transfers answered 404).";
      note.hidden = false;
      return;
    }
    if (!result.ok) {
      note.textContent = `The transfers could not be read: ${result.data.error || result.status}`;
      note.hidden = false;
      return;
    }
    const transfers = result.data.transfers || [];
    for (const transfer of transfers) {
      const row = document.createElement("tr");
      row.dataset.id = transfer.id;
      const receive = transfer.direction === "receive";
      row.append(element("td", visible(transfer.name), "peer"));
      row.append(element("td", `${receive ? "from" : "to"} ${visible(transfer.peer)}`, "peer"));
      const percent = transfer.size > 0 ? Math.floor(100 * Math.min(transfer.done, transfer.size) /
                                                     transfer.size) : 100;
      row.append(element("td", `${percent}% of ${bytes(transfer.size)}`));
      const finished = FINISHED.has(transfer.state);
      row.append(element("td", finished ? "" : `${bytes(Math.round(transfer.rate || 0))}/s`));
      const state = element("td", visible(transfer.state),
                            transfer.state === "done" ? "trusted" : finished ? "untrusted" : "");
      if (transfer.reason) state.title = visible(transfer.reason);
      row.append(state);
      const actions = element("td");
      if (!finished) actions.append(button("Cancel", () => cancelTransfer(transfer)));
      row.append(actions);
      rows.append(row);
    }
    note.textContent = "No transfers yet. Send a file with p2pnet-ctl send-file PATH.";
    note.hidden = transfers.length > 0;
  }

  async function refresh() {
    const [status, peers, messages, blocks, transfers] = await Promise.all([
      api("GET", "/api/status"),
      api("GET", "/api/peers"),
      api("GET", `/api/messages?since=${lastSeq}`),
      api("GET", "/api/blocks"),
      api("GET", "/api/transfers"),
    ]);
    if (csrf === null) return; // logged out meanwhile
    if (status.ok) drawStatus(status.data);
    if (peers.ok) drawPeers(peers.data.connected || []);
    if (messages.ok) drawMessages(messages.data.messages || []);
    drawBlocks(blocks);
    drawTransfers(transfers);
  }

  // -- Acting ------------------------------------------------------------------------------

  async function connect(event) {
    event.preventDefault();
    const host = $("connect-host").value.trim();
    const port = Number($("connect-port").value);
    notice(`Connecting to ${host}:${port}...`);
    const result = await api("POST", "/api/peers", { host, port });
    if (!result.ok) return reportError(`Could not connect to ${host}:${port}`, result);
    notice(`Connected to ${peerName(result.data)}.`);
    refresh();
  }

  async function send(event) {
    event.preventDefault();
    const text = $("send-text").value;
    const result = await api("POST", "/api/messages", { to: $("send-to").value, message: text });
    if (!result.ok) return reportError("Not sent", result);
    $("send-text").value = "";
    notice(`Sent to ${result.data.sent} peer(s).`, result.data.sent === 0);
  }

  async function block(what) {
    const result = await api("POST", "/api/block", what);
    if (!result.ok) return reportError("Not blocked", result);
    notice(`Blocked ${result.data.blocked}; ${result.data.dropped} channel(s) dropped.`);
    refresh();
  }

  async function blockFromForm(event) {
    event.preventDefault();
    const value = $("block-value").value.trim();
    await block({ [$("block-kind").value]: value });
    $("block-value").value = "";
  }

  async function unblock(what) {
    const result = await api("POST", "/api/unblock", what);
    if (missing(result)) {
      notice("This node cannot unblock (POST /api/unblock answered 404): stop it and edit " +
             "blocked.json in its data directory.", true);
      return;
    }
    if (!result.ok) return reportError("Not unblocked", result);
    notice(`Unblocked ${what.ip || what.identifier}.`);
    refresh();
  }

  async function cancelTransfer(transfer) {
    const result = await api("DELETE", `/api/transfers/${encodeURIComponent(transfer.id)}`);
    if (!result.ok) return reportError("Not cancelled", result);
    notice(result.data.cancelled_now ? `Cancelled ${visible(transfer.name)}.`
                                     : `${visible(transfer.name)} had already ended.`);
    refresh();
  }

  // -- Start -------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", async () => {
    $("login-form").addEventListener("submit", logIn);
    $("logout").addEventListener("click", logOut);
    $("connect-form").addEventListener("submit", connect);
    $("send-form").addEventListener("submit", send);
    $("block-form").addEventListener("submit", blockFromForm);
    const session = await api("GET", "/session");
    if (session.ok) loggedIn(session.data);
    else loggedOut("");
  });
})();
