// Beaker console, part 5 of 5: connecting with a token, the header's
// rules line, the live low-stock events (an EventSource on
// v1/nats/subjects/events.low_stock, with the token in the query: an
// EventSource cannot send headers), and the page's wiring.
"use strict";

const MAX_EVENTS = 200;

let stream = null;

async function loadRules() {
  const line = $("rules");
  const reply = await request("$SRV.INFO.beaker");
  if (reply.gateway) {
    setStatus(line, "Rules: unknown (" + reply.gateway + ")", true);
    return reply;
  }
  const meta = (reply.body && reply.body.metadata) || {};
  line.textContent = "";
  line.append("Rules: ");
  const name = el("strong", "", (meta.rules_name || "?") + " " + (meta.rules_version || "?"));
  name.id = "rules-name";
  line.append(name);
  line.append(" · sha256 " + shortDigest(meta.rules_digest) + " · service " + (reply.body.version || "?"));
  line.title = "digest " + (meta.rules_digest || "?") + ", active since " + (meta.rules_since || "?");
  line.dataset.version = meta.rules_version || "";
  return reply;
}

function decodeEnvelope(text) {
  const envelope = JSON.parse(text);
  const binary = atob(envelope.data || "");
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function showEvent(event) {
  const list = $("events");
  const item = el("li");
  const now = new Date();
  const time = el("time", "", now.toLocaleTimeString());
  time.dateTime = now.toISOString();
  item.append(time, el("span", "event-sku", event["product-sku"]), el("span", "event-level", event["stock-level"] + " left"));
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  product.onEvent(event);
}

function setBadge(text, state) {
  const badge = $("stream-status");
  badge.textContent = text;
  badge.className = state ? "badge " + state : "badge";
}

function openStream() {
  if (stream) stream.close();
  stream = new EventSource(SUBJECTS + "events.low_stock?authorization=" + encodeURIComponent(token));
  setBadge("connecting");
  stream.addEventListener("open", () => setBadge("live", "live"));
  stream.addEventListener("msg", (e) => {
    try {
      showEvent(decodeEnvelope(e.data));
    } catch (err) {
      console.warn("unreadable event", err);
    }
  });
  stream.addEventListener("closed", () => setBadge("reconnecting"));
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) setBadge("refused", "bad");
    else setBadge("reconnecting");
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
  const reply = await loadRules();
  // A refused token ends here; a gateway that accepts it but cannot reach
  // the service still shows what it can (the banner says what is down).
  if (reply.status === 401 || reply.status === 0) {
    setStatus(status, "The gateway did not accept this token: " + reply.gateway, true);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  setStatus(status, reply.gateway ? "Connected; the service is not answering." : "Connected.", Boolean(reply.gateway));
  openStream();
  instances.start();
  $("rules-status").textContent = "";
  rules.refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("access-form").addEventListener("submit", (e) => {
    e.preventDefault();
    connect($("token").value);
  });
  $("stock-form").addEventListener("submit", (e) => {
    e.preventDefault();
    product.stock("get");
  });
  $("add").addEventListener("click", () => product.stock("add"));
  $("remove").addEventListener("click", () => product.stock("remove"));
  $("older").addEventListener("click", () => product.page());
  $("promote").addEventListener("click", () => rules.change("promote"));
  $("rollback").addEventListener("click", () => rules.change("rollback"));

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
