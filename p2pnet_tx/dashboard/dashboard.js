// The p2pnet node dashboard: plain JavaScript (an ES module), no build step, no third-party
// code.  The login, the API calls with the CSRF token, the escaping and the table helpers are
// common.js, shared with the bootstrap server's dashboard.
//
// Everything a peer chose (its identifier, its display name, its messages) reaches the page
// only through textContent, never parsed as HTML: no markup is ever built from strings.
"use strict";

import {
  $, Dashboard, ago, button, definitions, element, fill, row, visible,
} from "/common.js";

const MAX_MESSAGES_SHOWN = 200;
const page = new Dashboard({ refresh, unreachable: "the node does not answer: is it running?" });
const api = (method, path, body) => page.api(method, path, body);
const notice = (text, isError) => page.notice(text, isError);
const reportError = (what, result) => page.reportError(what, result);
let lastSeq = 0;

// An endpoint this node does not have answers 404 "no such resource"; any other 404 is the
// endpoint's own answer (no such peer, not blocked, ...).
function missing(result) {
  return result.status === 404 && result.data.error === "no such resource";
}

// Whether a panel can draw `result`; if not, its `note` says why: this node lacks the endpoint
// (`absent`), or `what` could not be read.
function readable(result, note, what, absent) {
  if (result.ok) return true;
  const error = result.data.error || result.status;
  note.textContent = missing(result) ? absent : `${what} could not be read: ${error}`;
  note.hidden = false;
  return false;
}

// -- Drawing what the node says ---------------------------------------------------------

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 1) return `${(value * 1000).toFixed(value < 0.01 ? 2 : 1)} ms`;
  return `${value.toFixed(2)} s`;
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
  definitions(list, rows);
}

function drawPeers(peers) {
  const select = $("send-to");
  const chosen = select.value;
  select.replaceChildren(new Option("every trusted peer", "*"));
  const rows = peers.map((peer) => {
    const rtt = element("td", seconds(peer.rtt));
    if (peer.rtt_source) rtt.title = `measured by ${peer.rtt_source}`;
    const actions = element("td");
    if (peer.identifier) {
      actions.append(button("Block", () => block({ identifier: peer.identifier })));
    }
    if (peer.trusted && peer.identifier) {
      select.append(new Option(peerName(peer), peer.identifier));
    }
    const trust = peer.trusted ? "trusted" : "untrusted";
    return row([element("td", peerName(peer), "peer"), `${peer.address}:${peer.port}`,
                element("td", trust, trust), peer.direction, rtt, ago(peer.last_seen), actions],
               { identifier: peer.identifier || "" });
  });
  fill($("peer-rows"), rows, $("no-peers"));
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "*";
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
  if (!readable(result, note, "The blocks", "This node cannot list its blocks (GET " +
                "/api/blocks answered 404): it has no unblock API yet. Blocks are in " +
                "blocked.json in its data directory.")) return;
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
  if (!readable(result, note, "The transfers",
                "This node does not transfer files (GET /api/transfers answered 404).")) return;
  const transfers = result.data.transfers || [];
  fill(rows, transfers.map((transfer) => {
    const receive = transfer.direction === "receive";
    const percent = transfer.size > 0 ? Math.floor(100 * Math.min(transfer.done, transfer.size) /
                                                   transfer.size) : 100;
    const finished = FINISHED.has(transfer.state);
    const state = element("td", visible(transfer.state),
                          transfer.state === "done" ? "trusted" : finished ? "untrusted" : "");
    if (transfer.reason) state.title = visible(transfer.reason);
    const actions = element("td");
    if (!finished) actions.append(button("Cancel", () => cancelTransfer(transfer)));
    return row([element("td", visible(transfer.name), "peer"),
                element("td", `${receive ? "from" : "to"} ${visible(transfer.peer)}`, "peer"),
                `${percent}% of ${bytes(transfer.size)}`,
                finished ? "" : `${bytes(Math.round(transfer.rate || 0))}/s`, state, actions],
               { id: transfer.id });
  }));
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
  if (!page.loggedInNow) return; // logged out meanwhile
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

document.addEventListener("DOMContentLoaded", () => {
  $("connect-form").addEventListener("submit", connect);
  $("send-form").addEventListener("submit", send);
  $("block-form").addEventListener("submit", blockFromForm);
  page.start();
});
