#!/usr/bin/env node
// A Matrix server-name resolver (server-server API v1.19, "Resolving server
// names", steps 1 to 6) with a harness adapter for `mxresolve vectors run`.
// Written from docs/harness.md, spec-vectors/README.md and the vector files
// only (see README.md next to this file). Node 20, no dependencies.

import { createInterface } from 'node:readline';
import { isIPv4, isIPv6 } from 'node:net';

// ---------------------------------------------------------------- protocol

const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const log = (...args) => process.stderr.write(args.join(' ') + '\n');

const pending = new Map(); // ask id -> resolve function
let nextAskId = 1;

function ask(payload) {
  const id = nextAskId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    send({ ask: payload.ask, id, ...payload });
  });
}

// ---------------------------------------------------------------- settings

const DEFAULTS = {
  well_known_default_ttl: 86400,
  well_known_max_ttl: 172800,
  well_known_min_ttl: 300,
  failure_initial_ttl: 60,
  failure_backoff_factor: 2,
  failure_max_ttl: 3600,
  stale_if_error: 3600,
  dns_min_ttl: 0,
  dns_max_ttl: 86400,
  dns_negative_ttl: 300,
  dns_failure_ttl: 30,
  max_redirects: 10,
  max_body_bytes: 51200,
  max_srv_records: 32,
  max_cname_chain: 8,
  max_addresses_per_name: 16,
  deadline: 60,
  legacy_srv: true,
  srv_failure: 'as_absent',
  srv_dot: 'unavailable',
  srv_target_alias: 'follow',
  ip_policy: null,
};
const SETTING_KEYS = Object.keys(DEFAULTS);

const FEATURES = [
  'well-known-cache', 'dns-cache', 'deprecated-matrix-srv', 'observable-redirects',
  'address-level', 'address-lookup', 'ipv6', 'settings', 'stale-if-error', 'ip-policy',
  'endpoints',
];

// ---------------------------------------------------------------- addresses

function parseIPv4(s) {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    if (p.length > 1 && p[0] === '0') return null; // I-04: no leading zeros
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

// IPv6 text -> 8 16-bit groups, or null.
function parseIPv6(s) {
  if (!isIPv6(s) || s.includes('%')) return null;
  let text = s.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (!v4) return null;
    const hi = ((v4[0] << 8) | v4[1]).toString(16);
    const lo = ((v4[2] << 8) | v4[3]).toString(16);
    text = `${text.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const want = 8;
  let groups;
  if (text.includes('::')) {
    const [a, b] = text.split('::');
    const left = a ? a.split(':') : [];
    const right = b ? b.split(':') : [];
    const fill = want - left.length - right.length;
    if (fill < 0) return null;
    groups = [...left, ...Array(fill).fill('0'), ...right];
  } else {
    groups = text ? text.split(':') : [];
  }
  if (groups.length !== want) return null;
  return groups.map((g) => parseInt(g, 16));
}

// RFC 5952 text; IPv4-mapped addresses keep their dotted tail.
function formatIPv6(g) {
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`;
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}

function normaliseAddress(a) {
  if (isIPv4(a)) return a;
  const g = parseIPv6(a);
  return g ? formatIPv6(g) : String(a).toLowerCase();
}

// Address -> {v: 4|6, bits: BigInt} (IPv4-mapped judged as IPv4).
function addressBits(a) {
  const v4 = parseIPv4(a) || (isIPv4(a) ? a.split('.').map(Number) : null);
  if (v4) return { v: 4, bits: v4.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n) };
  const g = parseIPv6(a);
  if (!g) return null;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return { v: 4, bits: (BigInt(g[6]) << 16n) | BigInt(g[7]) };
  }
  return { v: 6, bits: g.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n) };
}

function inCidr(addr, cidr) {
  const [net, lenText] = cidr.split('/');
  const n = addressBits(net);
  const a = addressBits(addr);
  if (!n || !a || n.v !== a.v) return false;
  const width = n.v === 4 ? 32 : 128;
  const len = lenText === undefined ? width : Number(lenText);
  const shift = BigInt(width - len);
  return (a.bits >> shift) === (n.bits >> shift);
}

// Not globally routable (roughly IANA's special-purpose registries).
const SPECIAL = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16',
  '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24', '192.88.99.0/24', '192.168.0.0/16',
  '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
  '::/128', '::1/128', '64:ff9b:1::/48', '100::/64', '2001::/23', '2001:db8::/32',
  '2002::/16', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8',
];

function addressAllowed(addr, policy) {
  if (!policy) return true;
  if ((policy.deny || []).some((c) => inCidr(addr, c))) return false;
  if ((policy.allow || []).some((c) => inCidr(addr, c))) return true;
  const refuseSpecial = policy.refuse_special !== undefined ? policy.refuse_special : true;
  if (refuseSpecial && SPECIAL.some((c) => inCidr(addr, c))) return false;
  return true;
}

// ---------------------------------------------------------------- grammar

// Server name (or m.server) -> {kind, host, hostText, port, portText} or null.
function parseServerName(s) {
  if (typeof s !== 'string' || s.length === 0 || !/^[\x21-\x7e]+$/.test(s)) return null;
  let hostText, portText = null, kind;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return null;
    hostText = s.slice(0, close + 1);
    const rest = s.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
    const inner = hostText.slice(1, -1);
    if (!/^[0-9A-Fa-f:.]{2,45}$/.test(inner) || !parseIPv6(inner)) return null;
    kind = 'ipv6';
  } else {
    const parts = s.split(':');
    if (parts.length > 2) return null;
    hostText = parts[0];
    if (parts.length === 2) portText = parts[1];
    if (!/^[A-Za-z0-9.-]{1,255}$/.test(hostText)) return null;
    if (/^[0-9.]+$/.test(hostText)) {
      if (!parseIPv4(hostText)) return null; // I-03: digits and dots must be IPv4
      kind = 'ipv4';
    } else {
      const bare = hostText.endsWith('.') ? hostText.slice(0, -1) : hostText;
      if (bare.length === 0 || bare.length > 253) return null;
      if (bare.split('.').some((l) => l.length === 0 || l.length > 63)) return null;
      kind = 'dns';
    }
  }
  let port = null;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText)) return null;
    port = Number(portText);
    if (port < 1 || port > 65535) return null; // I-01
  }
  let host;
  if (kind === 'ipv6') host = formatIPv6(parseIPv6(hostText.slice(1, -1)));
  else if (kind === 'ipv4') host = hostText;
  else host = hostText.toLowerCase().replace(/\.$/, '');
  return { kind, host, hostText, port, portText };
}

// ---------------------------------------------------------------- resolver

class ResolveError extends Error {
  constructor(kind, step, message) {
    super(message || kind);
    this.kind = kind;
    this.step = step;
  }
}

const FAIL_STATUSES = new Set(['SERVFAIL', 'REFUSED', 'TIMEOUT']);

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Resolver {
  constructor(settings, seed) {
    this.s = { ...DEFAULTS, ...settings };
    this.random = mulberry32(seed || 0);
    this.dnsCache = new Map(); // "qname qtype" -> {answer, expires_at, qname, qtype}
    this.wkCache = new Map(); // hostname -> entry
    this.now = 0;
  }

  // ---- DNS, through the cache

  async dns(qname, qtype) {
    qname = qname.toLowerCase();
    if (!qname.endsWith('.')) qname += '.';
    const key = `${qname} ${qtype}`;
    const hit = this.dnsCache.get(key);
    if (hit && this.now < hit.expires_at) return hit.answer;
    const answer = await ask({ ask: 'dns', qname, qtype });
    let ttl;
    if (answer.status === 'NOERROR') {
      ttl = Math.min(Math.max(answer.ttl ?? 0, this.s.dns_min_ttl), this.s.dns_max_ttl);
    } else if (FAIL_STATUSES.has(answer.status)) {
      ttl = this.s.dns_failure_ttl;
    } else {
      ttl = this.s.dns_negative_ttl;
    }
    if (ttl > 0) this.dnsCache.set(key, { answer, expires_at: this.now + ttl, qname, qtype });
    else this.dnsCache.delete(key);
    return answer;
  }

  // AAAA then A. Returns {addresses, failed, refused, aliased}.
  async lookupAddresses(name) {
    const out = { addresses: [], failed: false, refused: false, aliased: false };
    for (const qtype of ['AAAA', 'A']) {
      const ans = await this.dns(name, qtype);
      if ((ans.aliases || []).length > this.s.max_cname_chain) { out.failed = true; continue; }
      if (ans.status === 'NOERROR') {
        if ((ans.aliases || []).length) out.aliased = true;
        for (const r of ans.records || []) out.addresses.push(normaliseAddress(r));
      } else if (FAIL_STATUSES.has(ans.status)) {
        out.failed = true;
      }
    }
    out.addresses = out.addresses.slice(0, this.s.max_addresses_per_name);
    const allowed = out.addresses.filter((a) => addressAllowed(a, this.s.ip_policy));
    if (out.addresses.length && !allowed.length) out.refused = true;
    out.addresses = allowed;
    return out;
  }

  // A DNS name target with its addresses, or a ResolveError.
  async addressTarget(name, port, hostHeader, certName, step) {
    const r = await this.lookupAddresses(name);
    if (!r.addresses.length) {
      if (r.refused) throw new ResolveError('refused_address', step);
      if (r.failed) throw new ResolveError('dns_failure', step);
      throw new ResolveError('no_address', step);
    }
    return [{
      host: name.toLowerCase().replace(/\.$/, ''), port, addresses: r.addresses,
      host_header: hostHeader, tls_server_name: certName, sni: certName,
    }];
  }

  ipTarget(ip, port, hostHeader, step) {
    if (!addressAllowed(ip, this.s.ip_policy)) throw new ResolveError('refused_address', step);
    return [{ host: ip, port, addresses: [ip], host_header: hostHeader, tls_server_name: ip, sni: null }];
  }

  // RFC 2782 ordering: by priority, weighted random within one priority.
  orderSrv(records) {
    const byPrio = new Map();
    for (const r of records) {
      if (!byPrio.has(r.priority)) byPrio.set(r.priority, []);
      byPrio.get(r.priority).push(r);
    }
    const out = [];
    for (const prio of [...byPrio.keys()].sort((a, b) => a - b)) {
      const group = [...byPrio.get(prio)].sort((a, b) => a.weight - b.weight);
      while (group.length) {
        const total = group.reduce((acc, r) => acc + r.weight, 0);
        const pick = Math.floor(this.random() * (total + 1));
        let running = 0, index = 0;
        for (; index < group.length; index++) {
          running += group[index].weight;
          if (running >= pick) break;
        }
        out.push(...group.splice(Math.min(index, group.length - 1), 1));
      }
    }
    return out;
  }

  // Returns targets, null for "no SRV record found", or throws.
  async srv(service, name, hostHeader, certName, step) {
    const ans = await this.dns(`${service}.${name}`, 'SRV');
    if (FAIL_STATUSES.has(ans.status)) {
      if (this.s.srv_failure === 'fail') throw new ResolveError('dns_failure', step);
      return null;
    }
    if (ans.status !== 'NOERROR' || !(ans.records || []).length) return null;
    const real = ans.records.filter((r) => r.target !== '.' && r.target !== '');
    if (!real.length) {
      if (this.s.srv_dot === 'unavailable') throw new ResolveError('service_unavailable', step);
      return null;
    }
    const usable = this.orderSrv(real.filter((r) => r.port > 0)).slice(0, this.s.max_srv_records);
    const targets = [];
    let failed = false, refused = false;
    for (const r of usable) {
      const res = await this.lookupAddresses(r.target);
      if (res.aliased && this.s.srv_target_alias === 'refuse') continue;
      if (!res.addresses.length) {
        failed ||= res.failed;
        refused ||= res.refused;
        continue;
      }
      targets.push({
        host: r.target.toLowerCase().replace(/\.$/, ''), port: r.port, addresses: res.addresses,
        host_header: hostHeader, tls_server_name: certName, sni: certName,
      });
    }
    if (!targets.length) {
      if (refused) throw new ResolveError('refused_address', step);
      if (failed) throw new ResolveError('dns_failure', step);
      throw new ResolveError('no_address', step);
    }
    return targets;
  }

  // ---- well-known

  // One fetch with redirects. {delegation} or {error, unavailable}.
  async fetchWellKnown(host) {
    let url = `https://${host}/.well-known/matrix/server`;
    const seen = new Set([url]);
    let hops = 0;
    for (;;) {
      const res = await ask({ ask: 'https', url });
      if (res.failure) {
        const definite = ['address_refused', 'headers_too_large', 'body_too_large'];
        return { error: res.failure, unavailable: !definite.includes(res.failure) };
      }
      const status = res.status;
      if ([301, 302, 303, 307, 308].includes(status)) {
        const loc = (res.headers || []).find(([k]) => k.toLowerCase() === 'location');
        if (!loc) return { error: 'redirect without Location', unavailable: false };
        let next;
        try { next = new URL(loc[1], url).href; } catch { return { error: 'bad Location', unavailable: false }; }
        if (!next.startsWith('https://')) return { error: 'redirect off https', unavailable: false };
        if (seen.has(next)) return { error: 'redirect loop', unavailable: false };
        if (hops >= this.s.max_redirects) return { error: 'too many redirects', unavailable: false };
        hops++;
        seen.add(next);
        url = next;
        continue;
      }
      if (status !== 200) {
        return { error: `HTTP ${status}`, unavailable: status >= 500 || status === 429 };
      }
      const bytes = Buffer.from(res.body_base64 || '', 'base64');
      if (bytes.length > this.s.max_body_bytes) return { error: 'body too large', unavailable: false };
      let body;
      try {
        body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
      } catch {
        return { error: 'bad JSON', unavailable: false };
      }
      if (!body || typeof body !== 'object' || Array.isArray(body)) return { error: 'not an object', unavailable: false };
      const m = body['m.server'];
      if (typeof m !== 'string' || !parseServerName(m)) return { error: 'bad m.server', unavailable: false };
      return { delegation: m, ttl: this.freshness(res.headers || []) };
    }
  }

  // Lifetime of a valid well-known from its headers (RFC 9111), clamped.
  freshness(headers) {
    const get = (n) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
    const cc = get('cache-control').join(',').toLowerCase().split(',').map((x) => x.trim());
    let ttl = null;
    if (cc.includes('no-store') || cc.includes('no-cache')) ttl = 0;
    else {
      const ma = cc.find((d) => d.startsWith('max-age='));
      if (ma !== undefined) {
        const n = Number(ma.slice(8).replace(/"/g, ''));
        ttl = Number.isFinite(n) && n >= 0 ? n : 0;
      } else if (get('expires').length) {
        const exp = Date.parse(get('expires')[0]) / 1000;
        const date = get('date').length ? Date.parse(get('date')[0]) / 1000 : NaN;
        if (!Number.isFinite(exp)) ttl = 0;
        else ttl = exp - (Number.isFinite(date) ? date : this.now);
      }
    }
    if (ttl === null) ttl = this.s.well_known_default_ttl;
    else {
      const age = Number(get('age')[0]);
      if (Number.isFinite(age) && age > 0) ttl -= age;
    }
    return Math.min(Math.max(ttl, this.s.well_known_min_ttl), this.s.well_known_max_ttl);
  }

  // The delegation to use for host (string), or null to go on at step 4.
  async wellKnown(host) {
    let e = this.wkCache.get(host);
    if (!e || this.now >= e.expires_at) {
      const r = await this.fetchWellKnown(host);
      const prev = e || { failures: 0, good: null };
      if (r.delegation !== undefined) {
        e = { delegation: r.delegation, expires_at: this.now + r.ttl, failures: 0, good: null, unavailable: false };
        e.good = { delegation: r.delegation, expires_at: e.expires_at };
      } else {
        const failures = prev.failures + 1;
        const ttl = Math.min(
          this.s.failure_initial_ttl * this.s.failure_backoff_factor ** (failures - 1),
          this.s.failure_max_ttl);
        e = {
          delegation: null, expires_at: this.now + ttl, failures,
          good: r.unavailable ? prev.good : null, unavailable: r.unavailable,
        };
        log(`well-known ${host}: ${r.error}`);
      }
      this.wkCache.set(host, e);
    }
    if (e.delegation !== null) return e.delegation;
    if (e.unavailable && e.good && this.now - e.good.expires_at < this.s.stale_if_error) {
      return e.good.delegation;
    }
    return null;
  }

  // ---- the algorithm

  async resolve(serverName) {
    const sn = parseServerName(serverName);
    if (!sn) throw new ResolveError('invalid_server_name', null);
    // Step 1: IP literal.
    if (sn.kind !== 'dns') return { step: '1', targets: this.ipTarget(sn.host, sn.port ?? 8448, serverName, '1') };
    // Step 2: explicit port.
    if (sn.port !== null) {
      return { step: '2', targets: await this.addressTarget(sn.host + '.', sn.port, serverName, sn.host, '2') };
    }
    // Step 3: well-known.
    const delegation = await this.wellKnown(sn.host);
    if (delegation !== null) {
      const d = parseServerName(delegation);
      if (d.kind !== 'dns') {
        return { step: '3.1', targets: this.ipTarget(d.host, d.port ?? 8448, delegation, '3.1') };
      }
      if (d.port !== null) {
        return { step: '3.2', targets: await this.addressTarget(d.host + '.', d.port, delegation, d.host, '3.2') };
      }
      let t = await this.srv('_matrix-fed._tcp', d.host + '.', d.hostText, d.host, '3.3');
      if (t) return { step: '3.3', targets: t };
      if (this.s.legacy_srv) {
        t = await this.srv('_matrix._tcp', d.host + '.', d.hostText, d.host, '3.4');
        if (t) return { step: '3.4', targets: t };
      }
      return { step: '3.5', targets: await this.addressTarget(d.host + '.', 8448, d.hostText, d.host, '3.5') };
    }
    // Steps 4 to 6.
    let t = await this.srv('_matrix-fed._tcp', sn.host + '.', sn.hostText, sn.host, '4');
    if (t) return { step: '4', targets: t };
    if (this.s.legacy_srv) {
      t = await this.srv('_matrix._tcp', sn.host + '.', sn.hostText, sn.host, '5');
      if (t) return { step: '5', targets: t };
    }
    return { step: '6', targets: await this.addressTarget(sn.host + '.', 8448, sn.hostText, sn.host, '6') };
  }

  cacheReport() {
    const out = [];
    for (const [name, e] of this.wkCache) {
      if (this.now < e.expires_at) {
        out.push({ kind: 'well-known', name, expires_at: e.expires_at, delegation: e.delegation });
      }
    }
    for (const e of this.dnsCache.values()) {
      if (this.now < e.expires_at) out.push({ kind: 'dns', qname: e.qname, qtype: e.qtype, expires_at: e.expires_at });
    }
    return out;
  }
}

// ---------------------------------------------------------------- main loop

let resolver = null;

async function handle(msg) {
  switch (msg.cmd) {
    case 'hello':
      send({
        protocol: 1,
        implementation: { name: 'docs-only-js', version: '0.1.0', language: 'javascript' },
        features: FEATURES,
        settings: SETTING_KEYS,
      });
      break;
    case 'start': {
      const unknown = Object.keys(msg.settings || {}).filter((k) => !SETTING_KEYS.includes(k));
      if (unknown.length) { send({ skip: `unsupported settings: ${unknown.join(', ')}` }); break; }
      resolver = new Resolver(msg.settings || {}, msg.seed);
      resolver.now = msg.epoch;
      send({ ok: true });
      break;
    }
    case 'resolve': {
      resolver.now = msg.now;
      let out;
      try {
        const r = await resolver.resolve(msg.server_name);
        out = { result: { targets: r.targets }, step: r.step };
      } catch (err) {
        if (err instanceof ResolveError) {
          out = { result: { error: err.kind, message: err.message }, step: err.step };
        } else {
          log(err.stack);
          out = { result: { error: 'dns_failure', message: String(err) }, step: null };
        }
      }
      out.cache = resolver.cacheReport();
      send(out);
      break;
    }
    case 'end':
      resolver = null;
      send({ ok: true });
      break;
    case 'quit':
      process.exit(0);
      break;
    default:
      log(`unknown message: ${JSON.stringify(msg)}`);
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
let queue = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  const msg = JSON.parse(line);
  if (msg.answer !== undefined) {
    const resolve = pending.get(msg.answer);
    pending.delete(msg.answer);
    if (resolve) resolve(msg);
    else log(`answer to unknown ask ${msg.answer}`);
    return;
  }
  // Commands run one after another; answers are dispatched as they arrive.
  queue = queue.then(() => handle(msg));
});
rl.on('close', () => process.exit(0));
