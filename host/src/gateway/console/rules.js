// Beaker console, part 3 of 5: the Rules panel. GET v1/rules reads what
// the rules bucket names (the same code as `beaker rules status`);
// promote and rollback (POST v1/rules/…) are offered only when the
// gateway says this token is an operator's, and the gateway refuses them
// to anyone else whatever the page shows.
"use strict";

const rules = {
  async refresh() {
    const status = $("rules-status");
    const reply = await gatewayJson("GET", "v1/rules");
    if (reply.gateway) {
      setStatus(status, "Cannot read the rules bucket: " + reply.gateway, true);
      return;
    }
    const view = reply.body || {};
    $("bucket").textContent = "Deployments through the rules bucket " + (view.bucket || "?") + ", newest first.";
    const rows = [];
    if (view.shadow) rows.push(deploymentRow("shadow", view.shadow));
    if (view.active) {
      rows.push(deploymentRow("active", view.active));
      for (const earlier of view.active.history || []) rows.push(deploymentRow("earlier", earlier));
    }
    const body = $("deployments").tBodies[0];
    body.replaceChildren(...rows);
    if (rows.length === 0) {
      const empty = el("tr");
      const cell = el("td", "hint", "Nothing deployed through the bucket: every instance serves its rules file.");
      cell.colSpan = 4;
      empty.append(cell);
      body.append(empty);
    }
    const actions = $("rules-actions");
    actions.hidden = !view.operator;
    $("promote").disabled = !view.shadow;
    // Before the first deploy came the instances' rules files, which can
    // always be returned to: rollback is possible unless they already serve.
    $("rollback").disabled = !(view.active && (view.active.rules !== "file" || (view.active.history || []).length));
    $("deployments").dataset.active = view.active ? view.active.version : "";
    if (!status.classList.contains("bad") && !status.textContent) {
      setStatus(status, view.operator ? "Your token may promote and roll back." : "Read only: promoting and rolling back need an operator token.");
    }
  },

  async change(action) {
    const status = $("rules-status");
    for (const id of ["promote", "rollback"]) $(id).disabled = true;
    setStatus(status, action === "promote" ? "Promoting…" : "Rolling back…");
    const reply = await gatewayJson("POST", "v1/rules/" + action);
    if (reply.gateway) {
      setStatus(status, "Refused: " + reply.gateway, true);
    } else if (action === "promote") {
      const a = reply.body.active;
      setStatus(status, "Promoted " + a.name + " " + a.version + "; the instances follow within their poll interval.");
    } else {
      setStatus(status, "Rolled back to " + describeRules(reply.body.to) + "; the instances follow within their poll interval.");
    }
    await rules.refresh();
    instances.refresh();
  },
};

// A deployment names a component, or ("rules": "file") each instance's
// own rules file.
function describeRules(entry) {
  return entry.rules === "file" ? "each instance's rules file" : entry.name + " " + entry.version;
}

function deploymentRow(role, pointer) {
  const tr = el("tr", "deployment " + role);
  tr.dataset.role = role;
  tr.dataset.version = pointer.rules === "file" ? "file" : pointer.version || "";
  const mark = el("td");
  if (role !== "earlier") {
    mark.append(el("span", "badge " + (role === "active" ? "live" : "shadow"), role));
  }
  tr.append(
    mark,
    el("td", "", describeRules(pointer) + (pointer.deployed_by ? " — " + pointer.deployed_by : "")),
    el("td", "digest", pointer.digest ? shortDigest(pointer.digest) : "—"),
    el("td", "", shortTime(pointer.deployed_at)),
  );
  return tr;
}
