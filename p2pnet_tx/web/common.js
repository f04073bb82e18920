// What the node dashboard and the bootstrap server's dashboard do alike: plain JavaScript (an
// ES module, imported by each page's dashboard.js), no build step, no third-party code.
//
// Whatever a peer chose reaches the page only through textContent, never parsed as HTML: no
// markup is ever built from strings.  Requests that change something carry the session's CSRF
// token; the session itself is an HttpOnly cookie that no script can read.
"use strict";

export const $ = (id) => document.getElementById(id);

// What p2pnet-ctl escapes, escaped alike: a backslash, C0 and C1 controls, line and paragraph
// separators, bidirectional controls and lone surrogates, so that a peer's text cannot
// reorder or hide what the page shows around it.
const UNSAFE = new RegExp(
  "[\\\\\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029" +
  "\\u202a-\\u202e\\u2066-\\u2069]" +
  "|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]", "g");

export function visible(text) {
  return String(text).replace(UNSAFE, (char) => {
    if (char === "\\") return "\\\\";
    const code = char.charCodeAt(0);
    return code <= 0xff ? "\\x" + code.toString(16).padStart(2, "0")
                        : "\\u" + code.toString(16).padStart(4, "0");
  });
}

// -- Drawing ---------------------------------------------------------------------------------

export function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function button(label, action, className) {
  const node = element("button", label, className);
  node.type = "button";
  node.addEventListener("click", action);
  return node;
}

// A table row of cells: a string (or number) becomes a <td> of that text; a node is put as is.
export function row(cells, data) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : element("td", cell));
  Object.assign(tr.dataset, data || {});
  return tr;
}

// Put `children` in `container` in place of what it held; show `emptyNote` when there are none.
export function fill(container, children, emptyNote) {
  container.replaceChildren(...children);
  if (emptyNote) emptyNote.hidden = children.length > 0;
}

// A <dl> of [label, value] pairs; a pair without a value is left out.
export function definitions(list, pairs) {
  list.replaceChildren();
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    list.append(element("dt", label), element("dd", value));
  }
}

export function ago(when, now = Date.now() / 1000) {
  if (when === null || when === undefined) return "never";
  const delta = Math.max(0, now - when);
  if (delta < 2) return "just now";
  if (delta < 120) return `${Math.round(delta)} s ago`;
  if (delta < 7200) return `${Math.round(delta / 60)} min ago`;
  return `${Math.round(delta / 3600)} h ago`;
}

// -- The session -----------------------------------------------------------------------------

// A logged-in page: its login form (#login-form, #token), its log-out button (#logout), its
// notice line (#notice), its panels (#app, shown once logged in), and the API calls that
// carry the CSRF token.  `refresh` redraws the panels; it runs every `pollMs` while logged in.
export class Dashboard {
  constructor({ refresh, unreachable, pollMs = 2000 }) {
    this.refresh = refresh;
    this.unreachable = unreachable;
    this.pollMs = pollMs;
    this.csrf = null;
    this.timer = null;
  }

  get loggedInNow() {
    return this.csrf !== null;
  }

  async api(method, path, body) {
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = this.csrf || "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { status: 0, ok: false, data: { error: this.unreachable } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (response.status === 401 && path !== "/session") {
      this.loggedOut("Your session has ended: log in again.");
    }
    return { status: response.status, ok: response.ok, data: data || {} };
  }

  notice(text, isError) {
    const p = $("notice");
    p.textContent = text || "";
    p.className = isError ? "error" : "";
    p.hidden = !text;
  }

  reportError(what, result) {
    this.notice(`${what}: ${result.data.error || "HTTP " + result.status}`, true);
  }

  loggedOut(message) {
    this.csrf = null;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    if (message) this.notice(message, true);
    $("token").focus();
  }

  loggedIn(session) {
    this.csrf = session.csrf;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    this.refresh();
    if (this.timer === null) this.timer = setInterval(() => this.refresh(), this.pollMs);
  }

  async logIn(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    const result = await this.api("POST", "/session", { token });
    $("token").value = "";
    if (!result.ok) {
      this.reportError("Not logged in", result);
      return;
    }
    this.notice("");
    this.loggedIn(result.data);
  }

  async logOut() {
    await this.api("DELETE", "/session");
    this.loggedOut("");
    this.notice("Logged out.");
  }

  // Wire the login form and the log-out button, then resume a live session if there is one.
  async start() {
    $("login-form").addEventListener("submit", (event) => this.logIn(event));
    $("logout").addEventListener("click", () => this.logOut());
    const session = await this.api("GET", "/session");
    if (session.ok) this.loggedIn(session.data);
    else this.loggedOut("");
  }
}
