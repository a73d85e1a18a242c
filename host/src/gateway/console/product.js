// Beaker console, part 4 of 5: the Product panel. Look up, add, remove
// (stock.get|add|remove); the product's ledger from stock.history, drawn
// as an inline SVG chart of the level over time and listed as a table,
// paged back with "Older movements"; and its low-stock events as they
// arrive.
"use strict";

const HISTORY_PAGE = 50;
const SVG = "http://www.w3.org/2000/svg";

const product = {
  sku: "",
  // Movements shown so far, newest first, and where the next page starts.
  movements: [],
  nextBefore: null,

  quantity() {
    const value = Number($("quantity").value);
    return Number.isInteger(value) ? value : $("quantity").value;
  },

  async stock(operation) {
    const sku = $("sku").value.trim();
    const result = $("result");
    const body = operation === "get"
      ? { "product-sku": sku }
      : { "product-sku": sku, "quantity": this.quantity() };
    for (const id of ["lookup", "add", "remove"]) $(id).disabled = true;
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
      if (!reply.gateway) await this.loadHistory(sku);
    } finally {
      for (const id of ["lookup", "add", "remove"]) $(id).disabled = false;
    }
  },

  // The newest page of the product's ledger; a new product starts the
  // panel afresh (its events list too).
  async loadHistory(sku) {
    if (sku !== this.sku) {
      this.sku = sku;
      $("product-events").replaceChildren();
    }
    this.movements = [];
    this.nextBefore = null;
    $("history").hidden = false;
    await this.page();
  },

  async page() {
    const status = $("history-status");
    const ask = { "product-sku": this.sku, "limit": HISTORY_PAGE };
    if (this.nextBefore !== null) ask.before = this.nextBefore;
    const answer = await request("stock.history", ask, true);
    if (answer.gateway || !(answer.body && answer.body.ok === true)) {
      const text = answer.gateway || answerError(answer);
      setStatus(status, "History: " + text, true);
      $("history").dataset.state = "error";
      // A first page that failed leaves nothing to draw: only the reason.
      $("ledger").hidden = this.movements.length === 0;
      return;
    }
    this.movements = this.movements.concat(answer.body.movements || []);
    this.nextBefore = answer.body["next-before"] ?? null;
    setStatus(status, this.movements.length + " movement(s)" + (this.nextBefore === null ? ", the whole ledger." : "; older ones on request."));
    $("history").dataset.state = "loaded";
    $("ledger").hidden = false;
    this.render();
  },

  render() {
    $("older").hidden = this.nextBefore === null;
    $("movements").tBodies[0].replaceChildren(...this.movements.map(movementRow));
    $("chart").replaceChildren(chart(this.movements));
  },

  // A low-stock event from the live stream: listed here when it is this
  // product's.
  onEvent(event) {
    if (!this.sku || event["product-sku"] !== this.sku) return;
    const item = el("li");
    const now = new Date();
    const time = el("time", "", now.toLocaleTimeString());
    time.dateTime = now.toISOString();
    item.append(time, el("span", "event-sku", event["product-sku"]), el("span", "event-level", event["stock-level"] + " left"));
    $("product-events").prepend(item);
  },
};

function movementRow(m) {
  const tr = el("tr", "movement " + m.operation);
  tr.dataset.id = m.id;
  const rules = m.rules ? m.rules.name + " " + m.rules.version : "";
  // A UUIDv7 begins with its time, which the table shows already: its
  // end tells requests apart.
  const requestId = el("td", "request-id", "…" + String(m["request-id"] || "").slice(-12));
  requestId.title = m["request-id"] || "";
  tr.append(
    el("td", "num", m.id),
    el("td", "", shortTime(m.at)),
    el("td", "", m.operation),
    el("td", "num", (m.operation === "remove" ? "−" : "+") + m.quantity),
    el("td", "num level-after", m["level-after"]),
    el("td", "", rules),
    requestId,
  );
  return tr;
}

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = String(text);
  return element;
}

// The level over time as a step line: each movement holds its level
// until the next one, the last until now.
function chart(movements) {
  const W = 720, H = 180, left = 44, right = 12, top = 10, bottom = 28;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "stock level over time", id: "level-chart" });
  const points = movements
    .map((m) => ({ t: new Date(m.at).getTime(), level: Number(m["level-after"]), m }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.level))
    .sort((a, b) => a.t - b.t || a.m.id - b.m.id);
  if (points.length === 0) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "no movements"));
    return root;
  }
  const t0 = points[0].t;
  const t1 = Math.max(Date.now(), points[points.length - 1].t + 1);
  const maxLevel = Math.max(1, ...points.map((p) => p.level));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - right);
  const y = (level) => top + (1 - level / maxLevel) * (H - top - bottom);
  root.append(
    svg("line", { x1: left, y1: y(0), x2: W - right, y2: y(0), class: "axis-line" }),
    svg("line", { x1: left, y1: y(maxLevel), x2: W - right, y2: y(maxLevel), class: "grid-line" }),
    svg("text", { x: left - 6, y: y(0) + 4, "text-anchor": "end", class: "axis" }, 0),
    svg("text", { x: left - 6, y: y(maxLevel) + 4, "text-anchor": "end", class: "axis" }, maxLevel),
    svg("text", { x: left, y: H - 8, class: "axis" }, new Date(t0).toLocaleString()),
    svg("text", { x: W - right, y: H - 8, "text-anchor": "end", class: "axis" }, "now"),
  );
  let path = `M ${x(points[0].t)} ${y(points[0].level)}`;
  for (const p of points.slice(1)) path += ` H ${x(p.t)} V ${y(p.level)}`;
  path += ` H ${x(t1)}`;
  root.append(svg("path", { d: path, class: "level-line" }));
  const last = points[points.length - 1];
  root.append(svg("text", { x: W - right, y: Math.max(top + 10, y(last.level) - 6), "text-anchor": "end", class: "axis" }, last.level));
  for (const p of points) {
    const dot = svg("circle", { cx: x(p.t), cy: y(p.level), r: 3.5, class: "dot " + p.m.operation });
    dot.append(svg("title", {}, `${p.m.operation} ${p.m.quantity} → ${p.level} at ${shortTime(p.m.at)}`));
    root.append(dot);
  }
  return root;
}
