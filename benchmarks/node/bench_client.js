// The Node socket.io-client 4 side of the benchmarks: the same measurements as
// benchmarks/client.py, printed as one JSON object on stdout.
//
//   node --expose-gc benchmarks/node/bench_client.js SPEC_JSON
//
// SPEC_JSON (benchmarks/client.py documents every field; both speak the same protocol):
//   {"mode": "roundtrip", "url": ..., "path": ..., "warmup_first": s}
//       connects, warms up, prints {"ready": true, "versions": {...}}, then runs one scenario
//       per command line on stdin, {"id", "kind": "seq" | "pipe" | "echo", "payload": bytes,
//       "window": n, "duration": s, "warmup": s}, printing one result line each, until stdin
//       closes;
//   {"mode": "many", "url": ..., "path": ..., "sessions": n, "call_seconds": s, "payload": bytes}
//       prints one result line and exits.
// Every client uses socket.io-client's defaults except transports: ["websocket"] (as every
// client in the benchmarks) and, for many connections, forceNew (one connection per socket).
"use strict";

const path = require("path");
const { performance } = require("perf_hooks");

const NODE_MODULES = path.resolve(__dirname, "..", "..", "tests", "node", "node_modules");
const { io } = require(path.join(NODE_MODULES, "socket.io-client"));

const spec = JSON.parse(process.argv[2] || "{}");

function payloadOf(size) {
  return "x".repeat(size);
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
}

function connect(opts = {}) {
  return new Promise((resolve, reject) => {
    const socket = io(spec.url, { path: spec.path, transports: ["websocket"], ...opts });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
}

async function sequential(socket, payload, seconds) {
  const times = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let now = start;
  while (now < deadline) {
    const t0 = now;
    const answer = await socket.emitWithAck("echo", payload);
    now = performance.now();
    if (answer !== payload) throw new Error("echo answered something else");
    times.push(now - t0);
  }
  const elapsed = (now - start) / 1000;
  times.sort((a, b) => a - b);
  return {
    count: times.length,
    elapsed,
    rate: times.length / elapsed,
    p50_us: percentile(times, 0.5) * 1000,
    p99_us: percentile(times, 0.99) * 1000,
  };
}

async function pipelined(socket, payload, windowSize, seconds) {
  let count = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  async function lane() {
    while (performance.now() < deadline) {
      const answer = await socket.emitWithAck("echo", payload);
      if (answer !== payload) throw new Error("echo answered something else");
      count++;
    }
  }
  const lanes = [];
  for (let i = 0; i < windowSize; i++) lanes.push(lane());
  await Promise.all(lanes);
  const elapsed = (performance.now() - start) / 1000;
  return { count, elapsed, rate: count / elapsed };
}

function echo(socket, payload, windowSize, seconds) {
  // `windowSize` pings in flight: every pong sends the next ping until the deadline.
  return new Promise((resolve, reject) => {
    let count = 0;
    let outstanding = 0;
    const start = performance.now();
    const deadline = start + seconds * 1000;
    function onPong(answer) {
      outstanding--;
      if (answer !== payload) {
        socket.off("pong", onPong);
        reject(new Error("pong carried something else"));
        return;
      }
      count++;
      if (performance.now() < deadline) {
        outstanding++;
        socket.emit("ping", payload);
      } else if (outstanding === 0) {
        socket.off("pong", onPong);
        const elapsed = (performance.now() - start) / 1000;
        resolve({ count, elapsed, rate: count / elapsed });
      }
    }
    socket.on("pong", onPong);
    for (let i = 0; i < windowSize; i++) {
      outstanding++;
      socket.emit("ping", payload);
    }
  });
}

async function runScenario(socket, scenario, seconds) {
  const payload = payloadOf(scenario.payload);
  if (scenario.kind === "seq") return sequential(socket, payload, seconds);
  if (scenario.kind === "pipe") return pipelined(socket, payload, scenario.window, seconds);
  if (scenario.kind === "echo") return echo(socket, payload, scenario.window, seconds);
  throw new Error(`unknown scenario kind ${scenario.kind}`);
}

async function measure(socket, scenario) {
  if (scenario.warmup) await runScenario(socket, scenario, scenario.warmup);
  const cpu = process.cpuUsage();
  const result = await runScenario(socket, scenario, scenario.duration);
  const used = process.cpuUsage(cpu);
  return { ...result, cpu_us: (used.user + used.system) / Math.max(1, result.count) };
}

function write(obj) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + "\n", resolve));
}

async function roundtrip(versions) {
  const socket = await connect();
  if (spec.warmup_first) {
    // Node's JIT and both ends' buffers warm up on the first thousands of messages.
    await pipelined(socket, payloadOf(64), 64, spec.warmup_first);
  }
  await write({ ready: true, client: "node", versions });
  const readline = require("readline");
  const lines = readline.createInterface({ input: process.stdin });
  // One command at a time, in order.
  for await (const line of lines) {
    if (!line.trim()) continue;
    const scenario = JSON.parse(line);
    let result;
    try {
      result = { id: scenario.id, ...(await measure(socket, scenario)) };
    } catch (err) {
      result = { id: scenario.id, error: String(err && err.message ? err.message : err) };
    }
    await write(result);
  }
  socket.close();
}

function rssKib() {
  if (global.gc) global.gc();
  return process.memoryUsage().rss / 1024;
}

async function many() {
  const n = spec.sessions;
  // One connection first, not counted: what every connection shares (modules, the first
  // buffers) is then already there.
  const first = await connect({ forceNew: true });
  const before = rssKib();
  const start = performance.now();
  const sockets = await Promise.all(Array.from({ length: n }, () => connect({ forceNew: true })));
  const connectSeconds = (performance.now() - start) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 300)); // let buffers settle
  const after = rssKib();

  // One call a second on each connection, evenly phased, on an absolute schedule.
  const payload = payloadOf(spec.payload);
  const times = [];
  let errors = 0;
  const calls = Math.max(1, Math.round(spec.call_seconds));
  const origin = performance.now() + 50;
  await Promise.all(
    sockets.map(async (socket, index) => {
      for (let k = 0; k < calls; k++) {
        const at = origin + (k + index / n) * 1000;
        const wait = at - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const t0 = performance.now();
        try {
          const answer = await socket.timeout(10000).emitWithAck("echo", payload);
          if (answer !== payload) throw new Error("wrong answer");
          times.push(performance.now() - t0);
        } catch (err) {
          errors++;
        }
      }
    }),
  );
  for (const socket of sockets) socket.close();
  first.close();
  times.sort((a, b) => a - b);
  return {
    sessions: n,
    connect_seconds: connectSeconds,
    connect_rate: n / connectSeconds,
    rss_kib_per_session: (after - before) / n,
    calls: times.length,
    call_errors: errors,
    p50_ms: percentile(times, 0.5),
    p99_ms: percentile(times, 0.99),
  };
}

async function main() {
  const versions = {
    node: process.version,
    "socket.io-client": require(path.join(NODE_MODULES, "socket.io-client", "package.json"))
      .version,
  };
  try {
    if (spec.mode === "many") {
      await write({ client: "node", versions, ...(await many()) });
    } else {
      await roundtrip(versions);
    }
  } catch (err) {
    await write({ client: "node", versions, error: String(err && err.message ? err.message : err) });
  }
  process.exit(0);
}

main();
