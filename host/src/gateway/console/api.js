// Beaker console, part 1 of 5: talking to the gateway, like any client.
// Request/reply: POST v1/nats/subjects/<subject> with the token as a
// bearer header. Operator views: GET v1/instances, GET v1/rules, POST
// v1/rules/{promote,rollback}. Nothing received is ever inserted as HTML:
// text only. The scripts share this file's top-level names (classic
// scripts, loaded in order by index.html).
"use strict";

const SUBJECTS = "v1/nats/subjects/";
const TOKEN_KEY = "beaker-gateway-token";

const $ = (id) => document.getElementById(id);

let token = "";

// An element with a class and text (never HTML).
function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = String(text);
  return element;
}

function setStatus(element, text, bad) {
  element.textContent = text;
  element.classList.toggle("bad", Boolean(bad));
}

// The reason the gateway gave for refusing or failing a call.
function gatewayReason(response) {
  const reason = response.headers.get("x-nats-api-gateway-error") || response.statusText;
  return response.status + ": " + reason;
}

// One call to a gateway route. Resolves to { gateway: <error text>,
// status } when the gateway refused or failed it, or { response, text }.
async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json",
      },
      body: method === "GET" ? undefined : (body === undefined ? "" : JSON.stringify(body)),
    });
  } catch (e) {
    return { gateway: "cannot reach the gateway: " + e.message, status: 0 };
  }
  if (!response.ok) {
    return { gateway: gatewayReason(response), status: response.status };
  }
  return { response, text: await response.text() };
}

// A request on a NATS subject. Resolves to { gateway, status } as
// `call`, or { body, code, error } with the service's reply (code and
// error from its Nats-Service-Error headers). The outcome updates the
// health banner unless `quiet` (an endpoint's own absence is not the
// service's).
async function request(subject, body, quiet) {
  const reply = await call("POST", SUBJECTS + subject, body);
  if (reply.gateway) {
    if (!quiet) health.fromFailure(reply);
    return reply;
  }
  let parsed;
  try {
    parsed = JSON.parse(reply.text);
  } catch (e) {
    return { gateway: "the reply is not JSON" };
  }
  const answer = {
    body: parsed,
    code: reply.response.headers.get("NatsH-Nats-Service-Error-Code"),
    error: reply.response.headers.get("NatsH-Nats-Service-Error"),
  };
  if (!quiet) health.fromAnswer(answer);
  return answer;
}

// A JSON route of the gateway: { gateway, status } or { body }.
async function gatewayJson(method, path) {
  const reply = await call(method, path);
  if (reply.gateway) {
    health.fromFailure(reply);
    return reply;
  }
  try {
    return { body: JSON.parse(reply.text) };
  } catch (e) {
    return { gateway: "the answer is not JSON" };
  }
}

// A failed service answer as the API gives it: "409 only 7 in stock".
function answerError(answer) {
  const text = (answer.body && answer.body.error) || answer.error || "refused";
  return (answer.code ? answer.code + " " : "") + text;
}

function shortDigest(digest) {
  return String(digest || "?").replace(/^sha256:/, "").slice(0, 12);
}

function shortTime(rfc3339) {
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? String(rfc3339 || "") : date.toLocaleString();
}

// What is down, told apart: the gateway itself, its NATS connection (from
// /healthz), the service (no responders, no instances) or the database
// (the service's 503 answers). The banner shows the first in
// this order: it causes the others.
const health = {
  gateway: null,
  nats: null,
  service: null,
  database: null,

  show() {
    const banner = $("health");
    const problems = [
      ["gateway-down", this.gateway],
      ["nats-down", this.nats],
      ["service-down", this.service],
      ["database-down", this.database],
    ].filter(([, text]) => text);
    if (problems.length === 0) {
      banner.dataset.state = token ? "ok" : "unknown";
      banner.textContent = token ? "Gateway, NATS, service and database are answering." : "Not connected.";
    } else {
      // The first is the cause of those after it (no NATS, no service).
      banner.dataset.state = problems[0][0];
      banner.textContent = problems[0][1];
    }
  },

  // A gateway error reply: 503 "no responders" means no service instance.
  fromFailure(reply) {
    if (reply.status === 0) this.gateway = "The gateway is unreachable: " + reply.gateway;
    if (reply.status === 503 && /no responders/.test(reply.gateway)) {
      this.service = "The service is down: " + reply.gateway;
    }
    if (reply.status === 504) {
      this.service = "No answer in time (" + reply.gateway + "): the service or its database is slow or down.";
    }
    if (reply.status === 503 && /not connected to NATS/.test(reply.gateway)) {
      this.nats = "NATS is down: " + reply.gateway;
    }
    this.show();
  },

  // A service answer: a 503 naming the database says it is down; any
  // success says the service and its database answer.
  fromAnswer(answer) {
    this.gateway = null;
    this.service = null;
    if (answer.body && answer.body.ok === true) {
      this.database = null;
    } else if (answer.code === "503" && /database/.test(answerError(answer))) {
      this.database = "The database is down: the service answers " + answerError(answer);
    }
    this.show();
  },

  // GET /healthz: 200 while the gateway's NATS connection is up.
  async check() {
    let response;
    try {
      response = await fetch("healthz");
    } catch (e) {
      this.gateway = "The gateway is unreachable: " + e.message;
      this.show();
      return false;
    }
    this.gateway = null;
    let state = "unknown";
    try {
      state = (await response.json()).nats;
    } catch (e) {
      // The status alone tells.
    }
    this.nats = response.ok ? null : "NATS is down: the gateway's connection is " + state + ".";
    this.show();
    return response.ok;
  },
};
