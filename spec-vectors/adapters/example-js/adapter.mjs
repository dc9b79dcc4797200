#!/usr/bin/env node
// An example harness adapter in JavaScript (Node 20, no dependencies). It relies on
// nothing but docs/harness.md and spec-vectors/README.md. It carries its own small resolver for
// Matrix spec v1.19 "Resolving server names" (steps 1 to 6, no cache), whose DNS and HTTPS
// questions go to the runner:
//
//     mxresolve vectors run --harness node spec-vectors/adapters/example-js/adapter.mjs
//
// It is an example of the protocol, not a resolver to deploy: it keeps nothing between
// resolutions and has no settings.

import { createInterface } from "node:readline";
import { isIP } from "node:net";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
let nextId = 0;

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function receive() {
  const { value, done } = await lines.next();
  if (done) process.exit(0);
  return JSON.parse(value);
}

async function ask(message) {
  const id = ++nextId;
  send({ ...message, id });
  const answer = await receive();
  if (answer.answer !== id) throw new Error(`expected the answer to ${id}, got ${JSON.stringify(answer)}`);
  return answer;
}

const askDns = (qname, qtype) => ask({ ask: "dns", qname, qtype });
const askHttps = (url) => ask({ ask: "https", url });

// --- the server-name grammar (appendices, "Server Name") ---------------------------------

class ResolutionError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const NAME = /^(?:\[([0-9A-Fa-f:.]{2,45})\]|([0-9A-Za-z.-]{1,255}))(?::([0-9]{1,5}))?$/;

function parseServerName(text) {
  const m = typeof text === "string" ? NAME.exec(text) : null;
  if (!m) throw new ResolutionError("invalid_server_name", `not a server name: ${JSON.stringify(text)}`);
  const [, v6, name, portText] = m;
  const port = portText === undefined ? null : Number(portText);
  if (port !== null && (port < 1 || port > 65535)) throw new ResolutionError("invalid_server_name", "port out of range");
  if (v6 !== undefined) {
    if (isIP(v6) !== 6) throw new ResolutionError("invalid_server_name", "bad IPv6 literal");
    return { text, host: compressV6(v6), literal: true, port };
  }
  if (/^[0-9.]+$/.test(name)) {
    if (isIP(name) !== 4 || name.split(".").some((o) => o.length > 1 && o.startsWith("0"))) {
      throw new ResolutionError("invalid_server_name", "bad IPv4 literal");
    }
    return { text, host: name, literal: true, port };
  }
  return { text, host: name.toLowerCase().replace(/\.$/, ""), literal: false, port };
}

function compressV6(address) {
  // Let the URL parser produce the RFC 5952 form.
  return new URL(`https://[${address}]/`).hostname.slice(1, -1);
}

const bracket = (host) => (isIP(host) === 6 ? `[${host}]` : host);
const target = (host, port, hostHeader, tlsName, addresses) => {
  const t = {
    host,
    port,
    host_header: hostHeader,
    tls_server_name: tlsName,
    sni: isIP(tlsName) ? null : tlsName,
  };
  if (addresses !== undefined) t.addresses = addresses;
  return t;
};

// --- DNS ---------------------------------------------------------------------------------

async function addresses(host) {
  const found = [];
  let failed = false;
  for (const qtype of ["AAAA", "A"]) {
    const a = await askDns(`${host}.`, qtype);
    if (a.status === "NOERROR") found.push(...a.records);
    else if (!["NXDOMAIN", "NODATA"].includes(a.status)) failed = true;
  }
  if (found.length === 0) {
    throw failed
      ? new ResolutionError("dns_failure", `no answer for ${host}`)
      : new ResolutionError("no_address", `${host} has no address`);
  }
  return found;
}

// SRV records in RFC 2782 order (equal priorities by descending weight: no randomness
// needed, the vectors accept any order there), or null when there are none.
async function srv(name) {
  const a = await askDns(name, "SRV");
  if (a.status !== "NOERROR") return null; // failures count as "not found"
  const records = a.records;
  if (records.length === 1 && records[0].target === ".") {
    throw new ResolutionError("service_unavailable", `${name} says no service`);
  }
  return records
    .filter((r) => r.target !== "." && r.port !== 0)
    .sort((x, y) => x.priority - y.priority || y.weight - x.weight);
}

async function srvTargets(records, hostHeader, tlsName) {
  const targets = [];
  for (const r of records) {
    const host = r.target.toLowerCase().replace(/\.$/, "");
    try {
      targets.push(target(host, r.port, hostHeader, tlsName, await addresses(host)));
    } catch (e) {
      if (!(e instanceof ResolutionError)) throw e;
    }
  }
  if (targets.length === 0) throw new ResolutionError("no_address", "no SRV target has an address");
  return targets;
}

// --- the well-known ----------------------------------------------------------------------

async function wellKnown(hostname) {
  let url = `https://${hostname}/.well-known/matrix/server`;
  for (let hop = 0; hop <= 10; hop++) {
    const a = await askHttps(url);
    if (a.failure) return null;
    if ([301, 302, 303, 307, 308].includes(a.status)) {
      const location = (a.headers.find(([k]) => k.toLowerCase() === "location") || [])[1];
      if (!location) return null;
      const next = new URL(location, url);
      if (next.protocol !== "https:") return null;
      url = next.href;
      continue;
    }
    if (a.status !== 200) return null;
    try {
      const body = JSON.parse(Buffer.from(a.body_base64, "base64").toString("utf8"));
      if (body === null || typeof body !== "object" || Array.isArray(body)) return null;
      if (typeof body["m.server"] !== "string") return null;
      return parseServerName(body["m.server"]);
    } catch {
      return null;
    }
  }
  return null;
}

// --- the algorithm -----------------------------------------------------------------------

async function resolve(text) {
  const name = parseServerName(text);
  if (name.literal) {
    return { step: "1", targets: [target(name.host, name.port ?? 8448, text, name.host, [name.host])] };
  }
  if (name.port !== null) {
    return { step: "2", targets: [target(name.host, name.port, text, name.host, await addresses(name.host))] };
  }
  const delegated = await wellKnown(name.host);
  if (delegated) {
    const d = delegated;
    if (d.literal) {
      const hostHeader = d.port === null ? bracket(d.host) : `${bracket(d.host)}:${d.port}`;
      return { step: "3.1", targets: [target(d.host, d.port ?? 8448, hostHeader, d.host, [d.host])] };
    }
    if (d.port !== null) {
      return { step: "3.2", targets: [target(d.host, d.port, d.text, d.host, await addresses(d.host))] };
    }
    const fed = await srv(`_matrix-fed._tcp.${d.host}.`);
    if (fed && fed.length) return { step: "3.3", targets: await srvTargets(fed, d.text, d.host) };
    const legacy = await srv(`_matrix._tcp.${d.host}.`);
    if (legacy && legacy.length) return { step: "3.4", targets: await srvTargets(legacy, d.text, d.host) };
    return { step: "3.5", targets: [target(d.host, 8448, d.text, d.host, await addresses(d.host))] };
  }
  const fed = await srv(`_matrix-fed._tcp.${name.host}.`);
  if (fed && fed.length) return { step: "4", targets: await srvTargets(fed, text, name.host) };
  const legacy = await srv(`_matrix._tcp.${name.host}.`);
  if (legacy && legacy.length) return { step: "5", targets: await srvTargets(legacy, text, name.host) };
  return { step: "6", targets: [target(name.host, 8448, text, name.host, await addresses(name.host))] };
}

// --- the protocol loop -------------------------------------------------------------------

for (;;) {
  const m = await receive();
  if (m.cmd === "hello") {
    send({
      protocol: 1,
      implementation: {
        name: "example-js",
        version: "0.1.0",
        language: "javascript",
        adapter: "spec-vectors/adapters/example-js/adapter.mjs",
        runtime: `node ${process.version}`,
      },
      features: ["address-level", "deprecated-matrix-srv", "observable-redirects", "ipv6"],
      settings: [],
    });
  } else if (m.cmd === "start" || m.cmd === "end") {
    send({ ok: true });
  } else if (m.cmd === "resolve") {
    try {
      const { step, targets } = await resolve(m.server_name);
      send({ result: { targets }, step });
    } catch (e) {
      if (!(e instanceof ResolutionError)) throw e;
      send({ result: { error: e.kind, message: e.message }, step: e.kind === "invalid_server_name" ? null : undefined });
    }
  } else if (m.cmd === "quit") {
    process.exit(0);
  }
}
