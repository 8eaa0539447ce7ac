/**
 * The load generator, run as its own process (forked by driver.mjs) so that
 * it never shares an event loop with the server it measures.
 *
 * Mode 'rate' is an open-loop, constant-rate generator in the manner of wrk2:
 *
 *   1. Request i (i = 0, 1, 2, ...) is due at t0 + i / rate. Connection c of C
 *      owns requests c, c + C, c + 2C, ...: each connection runs at rate / C.
 *   2. A connection sends its next request as soon as it is due and its
 *      previous response has arrived (keep-alive, no pipelining).
 *   3. Latency is measured from when a request was DUE, not when it was sent:
 *      a server that stalls for 50 ms delays every connection's queue, and all
 *      the requests that fell due meanwhile are charged for the wait. A
 *      closed-loop client would instead send fewer requests and hide it.
 *   4. Requests due in the warm-up are sent but not recorded. Requests due
 *      before the end that are still unsent or unanswered at the end plus the
 *      timeout count as errors ("unfinished"), so a queue cannot hide either.
 *
 * Options of mode 'rate' for runs that stop and start nodes under the load
 * (server/restart-bench.mjs):
 *
 *   - failover: the client knows every target. When a connection's target
 *     refuses it, or answers 503 with `Connection: close` (a node that is
 *     leaving), the connection moves to the next target and the request goes
 *     there, due when it was: the detour is in its latency. Each such move is
 *     a *failover*, counted apart, not an error. A connection away from its
 *     own target tries it again after FAILBACK_MS (and fails over again if it
 *     still refuses).
 *   - timelineMs: latencies, errors and failovers are also kept per slot of
 *     that many ms (by due time), so that the parent can cut the window into
 *     the moments it stopped and started nodes.
 *   - { type: 'stop' } from the parent ends the window early: requests due
 *     from then on are not sent, those in flight are awaited.
 *
 * With `metricsHistograms` (names), each status snapshot at the window's
 * start and end also carries those histograms from the target's /metrics
 * (`body.histograms`, lib/prom-histograms.mjs), for the tails bench.
 *
 * Mode 'fill' is closed-loop: it writes keys 0..keyCount-1 once each, in a
 * scrambled order, as fast as the server accepts them (to prepare a store).
 *
 * Protocol: the parent sends { type: 'run', config } over IPC; the child
 * answers { type: 'result', result } or { type: 'error', message } and exits.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseHistograms } from '../lib/prom-histograms.mjs';
import { Histogram } from './histogram.mjs';
import { Pacer } from './pacer.mjs';
import { RequestTemplate } from './request-template.mjs';
import { ParseError, ResponseParser } from './response-parser.mjs';

const RECONNECT_DELAY_MS = 50;
const TICK_MAX_MS = 50;
const CONNECT_TIMEOUT_MS = 5000;
const STATUS_TIMEOUT_MS = 5000;
/** The window's first status snapshot is taken this long before it starts (at most half the warm-up). */
const STATUS_LEAD_MS = 300;
/** failover: a connection away from its own target tries it again after this long. */
const FAILBACK_MS = 500;
/** failover: the first this many failovers are listed in the result (time, kind, target, error). */
const FAILOVER_LOG_MAX = 500;
/** timelineMs: the first this many errors are listed in the result (time, kind, status, target). */
const ERROR_LOG_MAX = 200;

/** Set while a rate run is under way: ends its window early (the parent's { type: 'stop' }). */
let stopCurrentRun = null;

/** xorshift32: a fast, seedable generator; quality is ample for picking keys. */
function makeRandom(seed) {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function gcd(a, b) {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** A stride coprime with n: i -> (i * stride) mod n visits 0..n-1 once each, scrambled. */
function scrambleStride(n) {
  let stride = 1_000_003;
  while (gcd(stride, n) !== 1) stride += 2;
  return stride % n || 1;
}

/**
 * The read and write system calls a node has made so far, from /proc/<pid>/io
 * (Linux, and only for a node on this machine): diffed over a window, they
 * show how many socket and file operations a request costs, i.e. how well
 * the node batches. null where unavailable.
 */
function syscallsOf(target, pid) {
  if (!Number.isInteger(pid) || !/^127\./.test(target.host)) return null;
  try {
    const text = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    const read = /^syscr:\s*(\d+)/m.exec(text);
    const write = /^syscw:\s*(\d+)/m.exec(text);
    return read && write ? { read: Number(read[1]), write: Number(write[1]) } : null;
  } catch {
    return null;
  }
}

function fetchStatus(target, path, metrics = null) {
  const status = fetchStatusOnly(target, path);
  if (metrics === null) return status;
  // The node's histograms named in metrics.names, read right after its status.
  return status.then(async (snap) => {
    const text = await fetchText(target, metrics.path);
    if (snap.body !== null && typeof snap.body === 'object')
      snap.body.histograms = text === null ? null : parseHistograms(text, metrics.names);
    return snap;
  });
}

/** GET path as text, or null. */
function fetchText(target, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: target.host, port: target.port, path, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(res.statusCode === 200 ? Buffer.concat(chunks).toString('utf8') : null));
      res.on('error', () => resolve(null));
    });
    req.setTimeout(STATUS_TIMEOUT_MS, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

function fetchStatusOnly(target, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: target.host, port: target.port, path, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (body !== null && typeof body === 'object') body.syscalls = syscallsOf(target, body.pid);
          resolve({ atMs: performance.now(), body });
        } catch {
          resolve({ atMs: performance.now(), body: null });
        }
      });
      res.on('error', () => resolve({ atMs: performance.now(), body: null }));
    });
    req.setTimeout(STATUS_TIMEOUT_MS, () => req.destroy());
    req.on('error', () => resolve({ atMs: performance.now(), body: null }));
  });
}

/** One keep-alive connection with at most one request in flight. */
class Connection {
  index;
  target;
  template;
  socket = null;
  connected = false;
  parser;
  inFlight = false;
  /** Due time (ms, performance.now) of the request in flight or the next one. */
  due = 0;
  sentAtMs = 0;
  /** Ordinal of the next request this connection owns (rate mode). */
  seq = 0;
  /** failover: the index of its own target, of the one it talks to now, and when to try its own again. */
  home = 0;
  at = 0;
  failbackAtMs = 0;
  /** failover: targets tried in a row without a connection. */
  refusedInRow = 0;
  /** The code of the socket's last error (ECONNREFUSED, ECONNRESET, ...). */
  lastError = null;
  /** The last bytes received (an error answer's text, for the error log). */
  lastChunk = null;
  closing = false;
  #onResponse;
  #onFailure;

  constructor(index, target, template, onResponse, onFailure) {
    this.index = index;
    this.target = target;
    this.template = template;
    this.#onResponse = onResponse;
    this.#onFailure = onFailure;
    this.parser = new ResponseParser((status, bodyBytes, close) => {
      if (!this.inFlight) throw new ParseError('response without a request');
      this.inFlight = false;
      if (close) this.drop();
      this.#onResponse(this, status, bodyBytes, close);
    });
  }

  connect() {
    return new Promise((resolve) => {
      this.closing = false;
      this.lastError = null;
      this.parser.reset();
      const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
      this.socket = socket;
      const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
      socket.once('connect', () => {
        clearTimeout(timer);
        this.connected = true;
        resolve(true);
      });
      socket.on('data', (chunk) => {
        this.lastChunk = chunk;
        try {
          this.parser.feed(chunk);
        } catch (err) {
          this.#fail(err instanceof ParseError ? 'parse' : 'internal', err);
        }
      });
      socket.on('error', (err) => {
        this.lastError = err.code ?? err.message;
      });
      socket.on('close', () => {
        clearTimeout(timer);
        const wasConnected = this.connected;
        this.connected = false;
        if (this.socket === socket) this.socket = null;
        if (!wasConnected) {
          // A failed connect: the caller of connect() decides when to retry.
          resolve(false);
          return;
        }
        if (!this.closing) this.#fail('socket', undefined);
      });
    });
  }

  send() {
    this.inFlight = true;
    this.sentAtMs = performance.now();
    this.socket.write(this.template.buffer);
  }

  /** Closes the socket without counting a failure. */
  drop() {
    this.closing = true;
    this.connected = false;
    if (this.socket !== null) this.socket.destroy();
    this.socket = null;
  }

  #fail(kind, err) {
    const hadRequest = this.inFlight;
    this.inFlight = false;
    this.drop();
    this.#onFailure(this, kind, hadRequest, err);
  }
}

/** The body of the answer at the end of `chunk`, cut to 200 characters. */
function answerText(chunk) {
  const text = chunk.toString('latin1');
  const head = text.lastIndexOf('\r\n\r\n');
  return (head >= 0 ? text.slice(head + 4) : text).slice(0, 200);
}

function makeTemplates(config, target) {
  return new RequestTemplate({
    method: config.method,
    path: config.path,
    keyPrefix: config.keyPrefix,
    querySuffix: config.querySuffix,
    host: target.host,
    port: target.port,
    valueBytes: config.valueBytes,
  });
}

function newErrorCounts() {
  return { status: {}, body: 0, socket: 0, parse: 0, timeout: 0, connect: 0, unfinished: 0 };
}

function totalErrors(e) {
  let n = e.body + e.socket + e.parse + e.timeout + e.connect + e.unfinished;
  for (const k of Object.keys(e.status)) n += e.status[k];
  return n;
}

/** Per-slot figures of a rate run (timelineMs): latencies of answered requests, errors, failovers. */
class Timeline {
  slotMs;
  slots = [];

  constructor(slotMs) {
    this.slotMs = slotMs;
  }

  slot(sinceStartMs) {
    const i = Math.max(0, Math.floor(sinceStartMs / this.slotMs));
    while (this.slots.length <= i) {
      this.slots.push({
        hist: new Histogram(),
        ok: 0,
        errors: newErrorCounts(),
        failovers: newFailoverCounts(),
      });
    }
    return this.slots[i];
  }

  toJSON() {
    return {
      slotMs: this.slotMs,
      slots: this.slots.map((s) => ({
        ok: s.ok,
        errors: s.errors,
        failovers: s.failovers,
        histogram: s.hist.toJSON(),
      })),
    };
  }
}

function newFailoverCounts() {
  return { refused: 0, leaving: 0 };
}

async function runRate(config) {
  const okStatuses = new Set(config.okStatuses);
  const random = makeRandom(config.seed);
  const intervalMs = (1000 * config.connections) / config.rate;
  const hist = new Histogram();
  const sendLag = new Histogram();
  const measured = { sent: 0, completed: 0, ok: 0, errors: newErrorCounts(), failovers: newFailoverCounts() };
  const warmup = { sent: 0, completed: 0, ok: 0, errors: newErrorCounts(), failovers: newFailoverCounts() };
  const failover = Boolean(config.failover) && config.targets.length > 1;
  const timeline = config.timelineMs > 0 ? new Timeline(config.timelineMs) : null;
  let t0 = 0;
  let measureStart = 0;
  let endDue = 0;
  let drainDeadline = 0;
  let finished = false;

  const bucketOf = (due) => (due >= measureStart ? measured : warmup);
  const slotOf = (due) =>
    timeline !== null && due >= measureStart ? timeline.slot(due - measureStart) : null;

  const conns = [];
  const templates = new Map();
  const templateFor = (conn, at) => {
    const key = `${conn.index}:${at}`;
    let template = templates.get(key);
    if (template === undefined) {
      template = makeTemplates(config, config.targets[at]);
      templates.set(key, template);
    }
    return template;
  };
  /** failover: points the connection at target `at` (its socket must be closed). */
  const retarget = (conn, at) => {
    conn.at = at;
    conn.target = config.targets[at];
    conn.template = templateFor(conn, at);
  };
  const failoverLog = [];
  const countFailover = (conn, kind) => {
    const now = performance.now();
    if (failoverLog.length < FAILOVER_LOG_MAX) {
      failoverLog.push({
        atMs: Math.round(now - measureStart),
        dueMs: Math.round(conn.due - measureStart),
        kind,
        port: conn.target.port,
        error: kind === 'refused' ? conn.lastError : null,
      });
    }
    // By when it happened: a connection can be refused before its next request is due.
    bucketOf(now).failovers[kind]++;
    const slot = slotOf(now);
    if (slot !== null) slot.failovers[kind]++;
    if (conn.at === conn.home) conn.failbackAtMs = performance.now() + FAILBACK_MS;
    retarget(conn, (conn.at + 1) % config.targets.length);
  };
  const advance = (conn) => {
    conn.seq++;
    conn.due = t0 + (conn.index + conn.seq * config.connections) * (1000 / config.rate);
  };
  const trySend = (conn, now, fromTimer) => {
    if (finished || conn.inFlight || !conn.connected || conn.due >= endDue || conn.due > now) return;
    if (now > drainDeadline) return;
    conn.template.setKey(random() % config.keyCount);
    const bucket = bucketOf(conn.due);
    // The generator's lateness in the measured window, as its latencies: not the warm-up's cold start.
    if (fromTimer && bucket === measured) sendLag.record((now - conn.due) * 1000);
    bucket.sent++;
    conn.send();
  };
  const errorLog = [];
  const countError = (conn, kind, status) => {
    if (timeline !== null && errorLog.length < ERROR_LOG_MAX) {
      const now = performance.now();
      errorLog.push({
        atMs: Math.round(now - measureStart),
        dueMs: Math.round(conn.due - measureStart),
        kind,
        status: status ?? null,
        port: conn.target.port,
        error: kind === 'socket' || kind === 'connect' ? conn.lastError : null,
        // An answer is small: its last chunk holds it; the text after the head says why.
        ...(kind === 'status' && conn.lastChunk !== null ? { text: answerText(conn.lastChunk) } : {}),
      });
    }
    const bucket = bucketOf(conn.due);
    const slot = slotOf(conn.due);
    for (const counts of slot === null ? [bucket.errors] : [bucket.errors, slot.errors]) {
      if (kind === 'status') counts.status[status] = (counts.status[status] ?? 0) + 1;
      else counts[kind]++;
    }
  };
  const onResponse = (conn, status, bodyBytes, close) => {
    const now = performance.now();
    if (failover && status === 503 && close) {
      // A node that is leaving: the same request (same due time) goes to the next target.
      countFailover(conn, 'leaving');
      connectSoon(conn, 0);
      return;
    }
    const bucket = bucketOf(conn.due);
    bucket.completed++;
    if (!okStatuses.has(status)) {
      countError(conn, 'status', status);
    } else if (config.expectBodyBytes >= 0 && status === 200 && bodyBytes !== config.expectBodyBytes) {
      countError(conn, 'body');
    } else {
      bucket.ok++;
      if (bucket === measured) {
        const us = (now - conn.due) * 1000;
        hist.record(us);
        const slot = slotOf(conn.due);
        if (slot !== null) {
          slot.ok++;
          slot.hist.record(us);
        }
      }
    }
    advance(conn);
    if (failover && conn.connected && conn.at !== conn.home && now >= conn.failbackAtMs) {
      // Time to try its own target again.
      conn.drop();
      retarget(conn, conn.home);
    }
    if (!conn.connected) connectSoon(conn, failover ? 0 : RECONNECT_DELAY_MS);
    else {
      trySend(conn, now, false);
      if (!conn.inFlight) wakeAt(conn.due);
    }
  };
  const connectSoon = (conn, delayMs) => {
    setTimeout(async () => {
      if (finished || performance.now() > drainDeadline) return;
      const ok = await conn.connect();
      if (!ok) {
        if (failover && conn.refusedInRow < config.targets.length) {
          // Refused: the next target, at once, until every one of them refused in a row.
          conn.refusedInRow++;
          countFailover(conn, 'refused');
          connectSoon(conn, 0);
          return;
        }
        conn.refusedInRow = 0;
        countError(conn, 'connect');
        connectSoon(conn, RECONNECT_DELAY_MS);
      } else {
        conn.refusedInRow = 0;
        // Not counted as send lag: the delay was the outage, not the generator.
        trySend(conn, performance.now(), false);
        if (!conn.inFlight) wakeAt(conn.due);
      }
    }, delayMs).unref();
  };
  const onFailure = (conn, kind, hadRequest) => {
    if (finished) return;
    if (hadRequest) {
      bucketOf(conn.due).completed++;
      countError(conn, kind === 'parse' ? 'parse' : 'socket');
      advance(conn);
    }
    connectSoon(conn, RECONNECT_DELAY_MS);
  };

  for (let i = 0; i < config.connections; i++) {
    const at = i % config.targets.length;
    const target = config.targets[at];
    const conn = new Connection(i, target, makeTemplates(config, target), onResponse, onFailure);
    conn.home = at;
    conn.at = at;
    templates.set(`${i}:${at}`, conn.template);
    conns.push(conn);
  }
  const connected = await Promise.all(conns.map((c) => c.connect()));
  const failedConnects = connected.filter((ok) => !ok).length;
  if (failedConnects === conns.length) throw new Error(`No connection to ${JSON.stringify(config.targets)}`);

  const pacer = await Pacer.start(() => tick());
  t0 = performance.now() + 20;
  measureStart = t0 + config.warmupMs;
  endDue = measureStart + config.durationMs;
  drainDeadline = endDue + config.timeoutMs;
  for (const conn of conns) {
    conn.seq = 0;
    conn.due = t0 + conn.index * (1000 / config.rate);
    if (!conn.connected) connectSoon(conn, RECONNECT_DELAY_MS);
  }

  const statusTargets = config.statusTargets ?? [];
  const metrics = config.metricsHistograms?.length
    ? { path: config.metricsPath ?? '/metrics', names: config.metricsHistograms }
    : null;
  let statusStart = null;
  let statusEnd = null;
  let cpuStart = null;
  let cpuEnd = null;
  const takeEnd = () => {
    if (cpuEnd !== null) return;
    cpuEnd = process.cpuUsage(cpuStart ?? undefined);
    statusEnd = Promise.all(statusTargets.map((t) => fetchStatus(t, config.statusPath, metrics)));
  };
  // The first snapshot is taken a little before the window: rendering and parsing /metrics
  // takes each node and this process a few ms, which would otherwise delay the window's first requests.
  const statusStartAt = measureStart - Math.min(STATUS_LEAD_MS, config.warmupMs / 2);
  let cpuStartAt = statusStartAt;
  const startTimer = setTimeout(() => {
    cpuStart = process.cpuUsage();
    cpuStartAt = performance.now();
    statusStart = Promise.all(statusTargets.map((t) => fetchStatus(t, config.statusPath, metrics)));
  }, statusStartAt - performance.now());
  let endTimer = setTimeout(takeEnd, Math.max(0, endDue - performance.now()));

  // One timer (the pacer's) drives every idle connection; it is pulled earlier
  // whenever a connection goes idle with its next request due before it fires.
  let timerAt = Number.POSITIVE_INFINITY;
  let tick = () => {};
  const wakeAt = (at) => {
    if (finished || at >= timerAt) return;
    timerAt = at;
    pacer.wakeAt(at);
  };
  stopCurrentRun = () => {
    // The window ends now (not before the measured part starts): nothing due later is sent.
    const now = Math.max(performance.now(), measureStart + 1);
    if (now >= endDue) return;
    endDue = now;
    drainDeadline = endDue + config.timeoutMs;
    clearTimeout(endTimer);
    endTimer = setTimeout(takeEnd, Math.max(0, endDue - performance.now()));
    wakeAt(performance.now());
  };

  await new Promise((resolve) => {
    tick = () => {
      timerAt = Number.POSITIVE_INFINITY;
      const now = performance.now();
      let nextDue = Number.POSITIVE_INFINITY;
      let busy = 0;
      for (const conn of conns) {
        if (conn.inFlight) {
          if (now - conn.sentAtMs > config.timeoutMs) {
            bucketOf(conn.due).completed++;
            countError(conn, 'timeout');
            conn.inFlight = false;
            conn.drop();
            advance(conn);
            connectSoon(conn, RECONNECT_DELAY_MS);
          } else {
            busy++;
          }
          continue;
        }
        trySend(conn, now, true);
        if (conn.inFlight) busy++;
        else if (conn.connected && conn.due < endDue && conn.due < nextDue) nextDue = conn.due;
      }
      const allScheduledDone = conns.every((c) => c.due >= endDue && !c.inFlight);
      if ((now >= endDue && busy === 0 && allScheduledDone) || now > drainDeadline) {
        resolve();
        return;
      }
      wakeAt(Math.min(nextDue, now + TICK_MAX_MS));
    };
    tick();
  });
  finished = true;
  stopCurrentRun = null;
  await pacer.close();
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  const measuredMs = endDue - measureStart;

  // Whatever fell due before the end and was never answered is an error.
  for (const conn of conns) {
    if (conn.inFlight && conn.due >= measureStart) {
      measured.errors.unfinished++;
      const slot = slotOf(conn.due);
      if (slot !== null) slot.errors.unfinished++;
    }
    // The connection's later requests due in the window, never sent: each in its own slot too (the
    // restart and join benches read their windows' errors from the slots). Bounded: at most the
    // window over the interval.
    let k = conn.seq + (conn.inFlight ? 1 : 0);
    const dueOf = (seq) => t0 + (conn.index + seq * config.connections) * (1000 / config.rate);
    // Past the warm-up at once (one step early, for rounding: the loop skips it).
    if (dueOf(k) < measureStart) k = Math.max(k, Math.ceil((measureStart - dueOf(0)) / intervalMs) - 1);
    for (; dueOf(k) < endDue; k++) {
      if (dueOf(k) < measureStart) continue;
      measured.errors.unfinished++;
      const slot = slotOf(dueOf(k));
      if (slot !== null) slot.errors.unfinished++;
    }
    conn.drop();
  }
  takeEnd();
  const start = statusStart ? await statusStart : [];
  const end = statusEnd ? await statusEnd : [];
  const cpuMs = (cpuEnd.user + cpuEnd.system) / 1000;
  const errorCount = totalErrors(measured.errors);
  return {
    mode: 'rate',
    rate: config.rate,
    connections: config.connections,
    failedConnects,
    windowMs: Math.round(measuredMs),
    warmupMs: config.warmupMs,
    measured: { ...measured, errorCount },
    warmup: { ...warmup, errorCount: totalErrors(warmup.errors) },
    achievedRate: Math.round((measured.ok / measuredMs) * 1000),
    latency: hist.summary(),
    histogram: hist.toJSON(),
    sendLag: sendLag.summary(),
    generatorCpuPercent: Math.round((cpuMs / (endDue - cpuStartAt)) * 100),
    status: { start, end },
    // Wall-clock time (ms since the epoch) when the measured window began, for lining up the timeline.
    measureStartEpochMs: performance.timeOrigin + measureStart,
    ...(timeline === null ? {} : { timeline: timeline.toJSON(), errorLog }),
    ...(failover ? { failoverLog } : {}),
  };
}

async function runFill(config) {
  const okStatuses = new Set(config.okStatuses);
  const stride = scrambleStride(config.keyCount);
  const errors = newErrorCounts();
  let next = 0;
  let ok = 0;
  let done = 0;
  const started = performance.now();
  const deadline = started + config.fillTimeoutMs;
  const conns = [];
  await new Promise((resolve, reject) => {
    let finished = false;
    const watchdog = setTimeout(
      () =>
        finish(
          new Error(`Fill did not finish within ${config.fillTimeoutMs} ms (${done} of ${config.keyCount})`),
        ),
      config.fillTimeoutMs,
    );
    const finish = (err) => {
      if (finished) return;
      finished = true;
      clearTimeout(watchdog);
      for (const c of conns) c.drop();
      if (err) reject(err);
      else resolve();
    };
    const sendNext = (conn) => {
      if (finished) return;
      if (next >= config.keyCount) {
        if (done >= config.keyCount) finish();
        return;
      }
      if (performance.now() > deadline) {
        finish(
          new Error(`Fill did not finish within ${config.fillTimeoutMs} ms (${done} of ${config.keyCount})`),
        );
        return;
      }
      conn.template.setKey((next * stride) % config.keyCount);
      next++;
      conn.send();
    };
    const onResponse = (conn, status) => {
      done++;
      if (okStatuses.has(status)) ok++;
      else errors.status[status] = (errors.status[status] ?? 0) + 1;
      if (conn.connected) sendNext(conn);
      else reconnect(conn);
    };
    const reconnect = (conn) => {
      setTimeout(async () => {
        if (finished) return;
        if (performance.now() > deadline) {
          finish(new Error('Fill lost its connections'));
          return;
        }
        if (await conn.connect()) sendNext(conn);
        else {
          errors.connect++;
          reconnect(conn);
        }
      }, RECONNECT_DELAY_MS).unref();
    };
    const onFailure = (conn, kind, hadRequest) => {
      if (finished) return;
      if (hadRequest) {
        done++;
        errors[kind === 'parse' ? 'parse' : 'socket']++;
      }
      if (done >= config.keyCount && next >= config.keyCount) finish();
      else reconnect(conn);
    };
    for (let i = 0; i < config.connections; i++) {
      const target = config.targets[i % config.targets.length];
      conns.push(new Connection(i, target, makeTemplates(config, target), onResponse, onFailure));
    }
    Promise.all(conns.map((c) => c.connect())).then(
      (oks) => {
        if (!oks.some(Boolean)) finish(new Error(`No connection to ${JSON.stringify(config.targets)}`));
        conns.forEach((c, i) => {
          if (oks[i]) sendNext(c);
          else reconnect(c);
        });
      },
      (err) => finish(err),
    );
  });
  const elapsedMs = performance.now() - started;
  return {
    mode: 'fill',
    keyCount: config.keyCount,
    ok,
    errors,
    errorCount: totalErrors(errors),
    elapsedMs: Math.round(elapsedMs),
    ratePerS: Math.round((ok / elapsedMs) * 1000),
  };
}

process.on('message', async (msg) => {
  if (msg?.type === 'stop') {
    stopCurrentRun?.();
    return;
  }
  if (msg?.type !== 'run') return;
  try {
    const result = msg.config.mode === 'fill' ? await runFill(msg.config) : await runRate(msg.config);
    process.send({ type: 'result', result }, () => process.exit(0));
  } catch (err) {
    process.send({ type: 'error', message: err instanceof Error ? err.message : String(err) }, () =>
      process.exit(1),
    );
  }
});
