/**
 * The bare loopback baseline of the runtime benchmark: the same hops as the durable pipeline
 * (client → source → processor → sink), each a plain node:http server in its own process,
 * without the runtime's durability or batching logic.
 *
 *   first   POST /records: parses the JSON array, wraps it as a batch {id, via, records} and
 *           POSTs it to the next hop; answers 202 {accepted} once that answered 200. No log,
 *           no fsync, no batcher: one request in is one batch out, so batch sizes are the
 *           clients' body sizes.
 *   middle  POST /batch: parses the batch, runs the same handler module as the runtime's
 *           processor, POSTs the result on; answers 200 once the next hop did.
 *   sink    POST /batch: appends one JSON line a record to a file (one write a batch, in
 *           order of arrival, no fsync, no index, no lock); answers 200 once written.
 *
 * Hops talk over keep-alive connections (node:http Agent, up to 64 sockets, as the runtime's
 * client does). Run one hop: `node bench/forwarder.mjs --role first --port P --next URL`,
 * `--role middle --port P --next URL --handler FILE`, `--role sink --port P --out FILE`.
 * `startForwarderChain` starts all three.
 */
import { open } from "node:fs/promises";
import { createServer } from "node:http";
import { fileURLToPath, pathToFileURL } from "node:url";
import { childEnv, freePorts, httpRequest, keepAliveAgent, signalChild, startChild, waitExit, waitUntil } from "./lib.mjs";

const self = fileURLToPath(import.meta.url);

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function reply(res, status, json) {
  const text = JSON.stringify(json);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function serve({ role, port, next, handler, out }) {
  const agent = keepAliveAgent(64);
  let handle = null;
  let run = (records) => records;
  if (role === "middle") run = (await import(pathToFileURL(handler).href)).default;
  if (role === "sink") handle = await open(out, "a");
  let seq = 0;
  let written = 0;
  let chain = Promise.resolve();
  const forward = async (batch) => {
    const answer = await httpRequest(agent, "POST", `${next}/batch`, JSON.stringify(batch));
    if (answer.status !== 200) throw new Error(`next hop answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  };
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/healthz") return reply(res, 200, { ok: true, written });
    (async () => {
      const text = await readBody(req);
      if (role === "first" && req.method === "POST" && req.url === "/records") {
        const records = JSON.parse(text);
        const id = `fwd-${seq}`;
        seq += records.length;
        await forward({ id, via: ["in"], records });
        return reply(res, 202, { accepted: records.length, first: seq - records.length });
      }
      if (role === "middle" && req.method === "POST" && req.url === "/batch") {
        const batch = JSON.parse(text);
        const records = await run(batch.records, {});
        await forward({ id: batch.id, via: [...batch.via, "process"], records });
        return reply(res, 200, { ok: true });
      }
      if (role === "sink" && req.method === "POST" && req.url === "/batch") {
        const batch = JSON.parse(text);
        const lines = Buffer.from(batch.records.map((r) => `${JSON.stringify(r)}\n`).join(""));
        const write = chain.then(() => handle.write(lines));
        chain = write.catch(() => undefined);
        await write;
        written += batch.records.length;
        return reply(res, 200, { ok: true });
      }
      return reply(res, 404, { error: "not found" });
    })().catch((err) => {
      if (!res.headersSent) reply(res, 500, { error: String(err?.message ?? err) });
    });
  });
  server.keepAliveTimeout = 10_000;
  server.listen(port, "127.0.0.1");
  const stop = () => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
    Promise.resolve(handle?.close()).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * Starts the three hops on free ports (the sink writes `outFile`; the middle hop runs
 * `handlerFile`'s default export). Resolves once all three answer, with the first hop's URL
 * and `stop()`.
 */
export async function startForwarderChain({ handlerFile, outFile }) {
  const base = await freePorts(3);
  const url = (k) => `http://127.0.0.1:${base + k}`;
  const hops = [
    startChild([self, "--role", "sink", "--port", String(base + 2), "--out", outFile], { env: childEnv() }),
    startChild([self, "--role", "middle", "--port", String(base + 1), "--next", url(2), "--handler", handlerFile], { env: childEnv() }),
    startChild([self, "--role", "first", "--port", String(base), "--next", url(1)], { env: childEnv() }),
  ];
  const stop = async () => {
    for (const h of hops) signalChild(h, "SIGTERM");
    for (const h of hops) if ((await waitExit(h, 3000)) === null) signalChild(h, "SIGKILL");
    await Promise.all(hops.map((h) => waitExit(h, 3000)));
  };
  try {
    const agent = keepAliveAgent(1);
    for (let k = 0; k < 3; k++) {
      await waitUntil(
        async () => {
          if (hops.some((h) => h.exit !== null)) throw new Error("exited");
          return (await httpRequest(agent, "GET", `${url(k)}/healthz`, undefined, 1000)).status === 200;
        },
        `the forwarder hop on port ${base + k}`,
      );
    }
    agent.destroy();
  } catch (err) {
    await stop();
    const dead = hops.find((h) => h.exit !== null);
    throw new Error(`the forwarder chain did not start: ${err.message}${dead ? `\n${dead.lines.join("\n")}` : ""}`);
  }
  return { url: `${url(0)}/records`, pids: hops.map((h) => h.pid), stop };
}

function parseArgs(argv) {
  const opts = {};
  for (let k = 0; k < argv.length; k += 2) opts[argv[k].replace(/^--/, "")] = argv[k + 1];
  opts.port = Number(opts.port);
  return opts;
}

if (process.argv[1] === self) {
  serve(parseArgs(process.argv.slice(2))).catch((err) => {
    process.stderr.write(`forwarder: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
