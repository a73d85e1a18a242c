// Beaker console: calls the gateway's messaging routes like any client.
// Request/reply: POST v1/nats/subjects/<subject> with the token as a
// bearer header. Live events: an EventSource on
// v1/nats/subjects/events.low_stock, with the token in the query (an
// EventSource cannot send headers). Nothing received is ever inserted as
// HTML: text only.
"use strict";

const SUBJECTS = "v1/nats/subjects/";
const TOKEN_KEY = "beaker-gateway-token";
const MAX_EVENTS = 200;

const $ = (id) => document.getElementById(id);

let token = "";
let stream = null;

function setStatus(element, text, bad) {
  element.textContent = text;
  element.classList.toggle("bad", Boolean(bad));
}

// One request through the gateway. Resolves to
// { gateway: <error text> } when the gateway refused or failed it, or
// { body, code, error } with the service's reply.
async function request(subject, body) {
  let response;
  try {
    response = await fetch(SUBJECTS + subject, {
      method: "POST",
      headers: {
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json",
      },
      body: body === undefined ? "" : JSON.stringify(body),
    });
  } catch (e) {
    return { gateway: "cannot reach the gateway: " + e.message };
  }
  if (!response.ok) {
    const reason = response.headers.get("x-nats-api-gateway-error") || response.statusText;
    return { gateway: response.status + ": " + reason, status: response.status };
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { gateway: "the reply is not JSON" };
  }
  return {
    body: parsed,
    code: response.headers.get("NatsH-Nats-Service-Error-Code"),
    error: response.headers.get("NatsH-Nats-Service-Error"),
  };
}

async function loadRules() {
  const rules = $("rules");
  const reply = await request("$SRV.INFO.beaker");
  if (reply.gateway) {
    setStatus(rules, "Rules: unknown (" + reply.gateway + ")", true);
    return false;
  }
  const meta = (reply.body && reply.body.metadata) || {};
  rules.textContent = "";
  rules.append("Rules: ");
  const name = document.createElement("strong");
  name.id = "rules-name";
  name.textContent = (meta.rules_name || "?") + " " + (meta.rules_version || "?");
  rules.append(name);
  const digest = (meta.rules_digest || "").slice(0, 12);
  rules.append(" · sha256 " + digest + " · service " + (reply.body.version || "?"));
  rules.title = "digest " + (meta.rules_digest || "?") + ", active since " + (meta.rules_since || "?");
  rules.dataset.version = meta.rules_version || "";
  return true;
}

function decodeEnvelope(text) {
  const envelope = JSON.parse(text);
  const binary = atob(envelope.data || "");
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function showEvent(event) {
  const list = $("events");
  const item = document.createElement("li");
  const time = document.createElement("time");
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString();
  const sku = document.createElement("span");
  sku.className = "event-sku";
  sku.textContent = String(event["product-sku"]);
  const level = document.createElement("span");
  level.className = "event-level";
  level.textContent = String(event["stock-level"]) + " left";
  item.append(time, sku, level);
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) {
    list.lastElementChild.remove();
  }
}

function openStream() {
  if (stream) {
    stream.close();
  }
  const badge = $("stream-status");
  const url = SUBJECTS + "events.low_stock?authorization=" + encodeURIComponent(token);
  stream = new EventSource(url);
  badge.textContent = "connecting";
  badge.className = "badge";
  stream.addEventListener("open", () => {
    badge.textContent = "live";
    badge.className = "badge live";
  });
  stream.addEventListener("msg", (e) => {
    try {
      showEvent(decodeEnvelope(e.data));
    } catch (err) {
      console.warn("unreadable event", err);
    }
  });
  stream.addEventListener("closed", () => {
    badge.textContent = "reconnecting";
    badge.className = "badge";
  });
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) {
      badge.textContent = "refused";
      badge.className = "badge bad";
    } else {
      badge.textContent = "reconnecting";
      badge.className = "badge";
    }
  });
}

async function connect(newToken) {
  token = newToken.trim();
  const status = $("access-status");
  if (!token) {
    setStatus(status, "Enter a gateway token.", true);
    return;
  }
  setStatus(status, "Connecting…");
  const ok = await loadRules();
  if (!ok) {
    setStatus(status, "The gateway did not accept this token, or the service is not answering.", true);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  setStatus(status, "Connected.");
  openStream();
}

function quantity() {
  const value = Number($("quantity").value);
  return Number.isInteger(value) ? value : $("quantity").value;
}

async function stock(operation) {
  const sku = $("sku").value.trim();
  const result = $("result");
  const body = operation === "get"
    ? { "product-sku": sku }
    : { "product-sku": sku, "quantity": quantity() };
  for (const id of ["lookup", "add", "remove"]) {
    $(id).disabled = true;
  }
  try {
    const reply = await request("stock." + operation, body);
    $("result-sku").textContent = sku;
    if (reply.gateway) {
      result.className = "result bad";
      $("level").textContent = "";
      $("result-message").textContent = reply.gateway;
    } else if (reply.body && reply.body.ok === true) {
      result.className = "result ok";
      $("level").textContent = String(reply.body.quantity);
      $("result-message").textContent = operation === "get" ? "in stock" : "in stock after " + operation;
    } else {
      result.className = "result bad";
      $("level").textContent = reply.code || "";
      $("result-message").textContent = (reply.body && reply.body.error) || reply.error || "refused";
    }
    result.dataset.operation = operation;
    result.dataset.outcome = reply.gateway ? "gateway-error" : (reply.body && reply.body.ok ? "ok" : "refused");
  } finally {
    for (const id of ["lookup", "add", "remove"]) {
      $(id).disabled = false;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("access-form").addEventListener("submit", (e) => {
    e.preventDefault();
    connect($("token").value);
  });
  $("stock-form").addEventListener("submit", (e) => {
    e.preventDefault();
    stock("get");
  });
  $("add").addEventListener("click", () => stock("add"));
  $("remove").addEventListener("click", () => stock("remove"));

  // A link may carry the token in its fragment (never sent to a server);
  // it is taken out of the address bar at once.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const initial = fragment.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
  if (fragment.has("token")) {
    history.replaceState(null, "", location.pathname + location.search);
  }
  if (initial) {
    $("token").value = initial;
    connect(initial);
  }
});
