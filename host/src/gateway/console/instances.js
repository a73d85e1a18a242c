// Beaker console, part 2 of 5: the Instances panel. GET v1/instances
// gathers every running host's $SRV.STATS answer (one request reaches
// them all; a plain request/reply would return only the first).
"use strict";

const INSTANCES_EVERY_MS = 3000;

const instances = {
  timer: null,

  start() {
    clearInterval(this.timer);
    this.refresh();
    this.timer = setInterval(() => this.refresh(), INSTANCES_EVERY_MS);
  },

  async refresh() {
    const badge = $("instances-status");
    const natsUp = await health.check();
    const reply = natsUp ? await gatewayJson("GET", "v1/instances") : { gateway: "NATS is down" };
    if (reply.gateway) {
      badge.textContent = reply.gateway;
      badge.className = "badge bad";
      return;
    }
    const list = Array.isArray(reply.body) ? reply.body : [];
    health.service = list.length === 0 ? "The service is down: no instance answers discovery." : null;
    health.show();
    badge.textContent = list.length + " running";
    badge.className = list.length ? "badge live" : "badge bad";
    const body = $("instances").tBodies[0];
    body.replaceChildren(...list.map(row));
  },
};

// The counters of every endpoint, summed.
function totals(stats) {
  const endpoints = Array.isArray(stats.endpoints) ? stats.endpoints : [];
  const sum = (key) => endpoints.reduce((n, e) => n + (Number(e[key]) || 0), 0);
  const requests = sum("num_requests");
  const lastErrors = endpoints
    .filter((e) => e.last_error)
    .map((e) => e.name + ": " + e.last_error);
  return {
    requests,
    errors: sum("num_errors"),
    averageMs: requests ? sum("processing_time") / requests / 1e6 : 0,
    lastError: lastErrors.join("; "),
  };
}

function row(stats) {
  const meta = stats.metadata || {};
  const tr = el("tr");
  tr.dataset.instance = stats.id || "";
  const rules = el("td", "rules-cell", (meta.rules_name || "?") + " " + (meta.rules_version || "?"));
  rules.append(el("small", "digest", " " + shortDigest(meta.rules_digest)));
  rules.title = "since " + (meta.rules_since || "?") + (meta.rules_refused_reason
    ? "; last refused " + shortDigest(meta.rules_refused_digest) + ": " + meta.rules_refused_reason
    : "");
  const shadow = el("td", "shadow-cell");
  if (meta.shadow_name) {
    shadow.append(meta.shadow_name + " " + meta.shadow_version + " ");
    shadow.append(el("small", "digest", shortDigest(meta.shadow_digest)));
    shadow.append(el("div", "divergence",
      (meta.shadow_agreements || 0) + " agree · " + (meta.shadow_divergences || 0) + " diverge · "
      + (meta.shadow_failures || 0) + " failed"));
  } else {
    shadow.textContent = "–";
  }
  const t = totals(stats);
  tr.append(
    el("td", "instance-id", stats.id),
    el("td", "", stats.version),
    rules,
    shadow,
    el("td", "num requests", t.requests),
    el("td", t.errors ? "num errors" : "num", t.errors),
    el("td", "num", t.averageMs.toFixed(2)),
    el("td", "last-error", t.lastError || "–"),
  );
  return tr;
}
