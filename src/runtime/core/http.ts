/**
 * HTTP for the runtime, on node:http with no framework.
 *
 * Server side: a route is `{method, path, handle}` where `path` may hold `:param` segments and
 * `handle` returns a Reply value (`{status, json}` or `{status, text}`), so handlers stay easy to
 * test without a socket. Throw an HttpError to answer an error status with `{"error": message}`;
 * any other exception answers 500 and is logged. Bodies are read on demand with a size limit
 * (413 beyond it). `commonRoutes` serves `/healthz`, `/readyz` and `/metrics`.
 *
 * Client side: `createHttpClient` sends requests over node:http with a keep-alive Agent rather
 * than fetch. Batches travel between the same few processes all the time, so what matters is
 * reusing connections and a cheap path per request: node:http writes and reads Buffers with no
 * WHATWG stream layer in between (undici's fetch in Node 20 costs noticeably more per request),
 * and its socket errors come with the `code` that tells a connect failure (retried when
 * `retry.on` has `connect`) from a timeout. The client classifies failures for the dispatcher:
 * an HttpClientError has `kind` "connect" (refused, reset, unreachable: the instance is down or
 * went away mid-request — a batch is idempotent by id, so retrying it is safe), "timeout" or
 * "aborted" (the caller's signal).
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./contracts.js";
import type { RuntimeMetrics } from "./metrics.js";

export type Method = "GET" | "PUT" | "POST" | "DELETE";

/** Default limit of a request body: a batch of the default 1 MiB with room for JSON framing. */
export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;

/** How long the client keeps an idle connection. */
const CLIENT_IDLE_MS = 4_000;
/** How long the server keeps an idle connection: longer than the client does. */
const SERVER_KEEP_ALIVE_MS = 10_000;

export interface RouteRequest {
  readonly method: string;
  /** The URL path, without the query. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Values of the route's `:param` segments, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly headers: IncomingHttpHeaders;
  readonly raw: IncomingMessage;
  /** Aborts when the client goes away before the reply is sent. */
  readonly signal: AbortSignal;
  /** The whole body; HttpError 413 when it exceeds `limit` (default: the route's bodyLimit). */
  body(limit?: number): Promise<Buffer>;
  /** The body parsed as JSON; HttpError 400 when it is not JSON. */
  json(limit?: number): Promise<unknown>;
}

export interface Reply {
  status: number;
  /** A JSON body. */
  json?: unknown;
  /** A text body (with `contentType`, default text/plain). */
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface Route {
  method: Method;
  /** e.g. `/v1/instances/:service/:instance`. */
  path: string;
  handle(req: RouteRequest): Reply | Promise<Reply>;
  /** Served while the process drains (default false: 503 with Retry-After). */
  whileDraining?: boolean;
  /** Body size limit in bytes (default DEFAULT_BODY_LIMIT). */
  bodyLimit?: number;
}

/** Throw from a route to answer `status` with `{"error": message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function jsonReply(status: number, json: unknown, headers?: Record<string, string>): Reply {
  return headers ? { status, json, headers } : { status, json };
}

interface CompiledRoute {
  route: Route;
  segments: string[];
}

function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s !== "");
}

/** Matches a path against a route's segments; the params, or null. Throws 400 on bad %-encoding. */
export function matchPath(segments: readonly string[], parts: readonly string[]): Record<string, string> | null {
  if (segments.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    const part = parts[i] as string;
    if (seg.startsWith(":")) {
      try {
        params[seg.slice(1)] = decodeURIComponent(part);
      } catch {
        throw new HttpError(400, `bad URL encoding in ${JSON.stringify(part)}`);
      }
    } else if (seg !== part) return null;
  }
  return params;
}

/** A request body parsed as JSON; HttpError 400 when it is not JSON. */
export function parseJsonBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
  }
}

/** Reads a whole request body, refusing (413) more than `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new HttpError(413, `body of ${declared} bytes is over the limit of ${limit}`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering; the reply carries Connection: close so the rest is not read.
        req.pause();
        finish(new HttpError(413, `body is over the limit of ${limit} bytes`));
      } else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    // The client went away: answered as a bad request (nobody reads it), not logged as our failure.
    const onError = (err: Error) => finish(new HttpError(400, `reading the body failed: ${err.message}`));
    const onClose = () => finish(new HttpError(400, "the client closed the connection before sending the whole body"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

export interface RouterOptions {
  log: Logger;
  /** While true, routes without `whileDraining` answer 503. */
  isDraining?: () => boolean;
}

/** A request listener for node:http serving `routes`: 404 for an unknown path, 405 for a wrong method. */
export function createRouter(routes: readonly Route[], options: RouterOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const compiled: CompiledRoute[] = routes.map((route) => ({ route, segments: splitPath(route.path) }));
  const { log } = options;
  return (req, res) => {
    handleRequest(compiled, options, req, res).catch((err: unknown) => {
      // Only a failure to write the reply gets here (the socket is gone): nothing to answer.
      log.warn("could not send a reply", { method: req.method, url: req.url, error: err });
      if (!res.headersSent) res.destroy();
    });
  };
}

async function handleRequest(compiled: readonly CompiledRoute[], options: RouterOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let reply: Reply;
  try {
    reply = await dispatchRequest(compiled, options, req, res);
  } catch (err) {
    if (err instanceof HttpError) {
      reply = { status: err.status, json: { error: err.message }, headers: err.headers };
      // A body that was not read to its end cannot leave the connection reusable.
      if (err.status === 413 || err.status === 400) reply.headers = { ...reply.headers, connection: "close" };
    } else {
      options.log.error("request failed", { method: req.method, url: req.url, error: err });
      reply = { status: 500, json: { error: err instanceof Error ? err.message : String(err) } };
    }
  }
  sendReply(res, reply);
}

async function dispatchRequest(compiled: readonly CompiledRoute[], options: RouterOptions, req: IncomingMessage, res: ServerResponse): Promise<Reply> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const parts = splitPath(url.pathname);
  const allowed: string[] = [];
  for (const { route, segments } of compiled) {
    const params = matchPath(segments, parts);
    if (params === null) continue;
    if (route.method !== req.method) {
      allowed.push(route.method);
      continue;
    }
    if (!route.whileDraining && options.isDraining?.()) throw new HttpError(503, "draining: shutting down", { "retry-after": "1", connection: "close" });
    const limit = route.bodyLimit ?? DEFAULT_BODY_LIMIT;
    let controller: AbortController | null = null;
    const request: RouteRequest = {
      method: req.method,
      path: url.pathname,
      query: url.searchParams,
      params,
      headers: req.headers,
      raw: req,
      get signal() {
        if (controller === null) {
          const c = new AbortController();
          controller = c;
          res.once("close", () => {
            if (!res.writableFinished) c.abort(new Error("the client went away"));
          });
        }
        return controller.signal;
      },
      body: (max = limit) => readBody(req, max),
      json: async (max = limit) => parseJsonBody((await readBody(req, max)).toString("utf8")),
    };
    return await route.handle(request);
  }
  if (allowed.length > 0) throw new HttpError(405, `method ${req.method} not allowed`, { allow: allowed.join(", ") });
  throw new HttpError(404, `no route for ${url.pathname}`);
}

function sendReply(res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  let body: string | undefined;
  let contentType = reply.contentType;
  if (reply.json !== undefined) {
    body = JSON.stringify(reply.json);
    contentType ??= "application/json";
  } else if (reply.text !== undefined) {
    body = reply.text;
    contentType ??= "text/plain; charset=utf-8";
  }
  const headers: Record<string, string | number> = { ...reply.headers };
  if (body !== undefined && reply.status !== 204 && reply.status !== 304) {
    headers["content-type"] = contentType as string;
    headers["content-length"] = Buffer.byteLength(body);
    res.writeHead(reply.status, headers);
    res.end(body);
  } else {
    res.writeHead(reply.status, headers);
    res.end();
  }
}

export interface ReadyState {
  ready: boolean;
  /** Why not, when not ready (shown in the 503 body). */
  reasons?: string[];
}

/**
 * What `/readyz` reports: `all` (plain `/readyz`) the process and what it needs of others (a
 * downstream service with a live instance); `self` (`/readyz?scope=self`) only its own state.
 */
export type ReadyScope = "all" | "self";

/** `/healthz` (alive), `/readyz` (200 or 503 with reasons; `?scope=self`), `/metrics` (Prometheus text). */
export function commonRoutes(options: { ready: (scope: ReadyScope) => ReadyState; metrics: RuntimeMetrics }): Route[] {
  return [
    { method: "GET", path: "/healthz", whileDraining: true, handle: () => ({ status: 200, json: { ok: true } }) },
    {
      method: "GET",
      path: "/readyz",
      whileDraining: true,
      handle: (req) => {
        const scope = req.query.get("scope");
        if (scope !== null && scope !== "self") throw new HttpError(400, `unknown scope ${JSON.stringify(scope)}: use /readyz or /readyz?scope=self`);
        const state = options.ready(scope === "self" ? "self" : "all");
        return state.ready ? { status: 200, json: { ready: true } } : { status: 503, json: { ready: false, reasons: state.reasons ?? [] } };
      },
    },
    {
      method: "GET",
      path: "/metrics",
      whileDraining: true,
      handle: async () => ({ status: 200, text: await options.metrics.render(), contentType: options.metrics.contentType }),
    },
  ];
}

export interface RunningServer {
  readonly server: Server;
  /** The port it listens on (the assigned one when asked for port 0). */
  readonly port: number;
  /**
   * Stops accepting connections, closes idle keep-alive connections, waits up to `graceMs`
   * for requests in progress, then cuts what is left.
   */
  close(graceMs?: number): Promise<void>;
}

/** Listens on host:port (0: an ephemeral port) and resolves once listening. */
export function startServer(listener: (req: IncomingMessage, res: ServerResponse) => void, host: string, port: number): Promise<RunningServer> {
  const server = createServer({ keepAlive: true }, listener);
  // Longer than the client's idle timeout (CLIENT_IDLE_MS): the client closes an idle
  // connection first, so it never sends on one the server is closing (an ECONNRESET that
  // would cost a retry).
  server.keepAliveTimeout = SERVER_KEEP_ALIVE_MS;
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === "EADDRINUSE" ? "the address is in use" : err.code === "EADDRNOTAVAIL" ? "no interface has this address" : err.message;
      reject(new Error(`cannot listen on ${host}:${port}: ${why}`, { cause: err }));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address() as AddressInfo;
      resolve({ server, port: address.port, close: (graceMs = 1000) => closeServer(server, graceMs) });
    });
  });
}

function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

// ---------------------------------------------------------------------------------------------
// Client

export type ClientFailure = "connect" | "timeout" | "aborted";

/** A request that got no HTTP answer. */
export class HttpClientError extends Error {
  constructor(
    readonly kind: ClientFailure,
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HttpClientError";
  }
}

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body as JSON; throws when it is not. */
  json(): unknown;
}

export interface RequestOptions {
  /** Sent as JSON (content-type application/json). */
  json?: unknown;
  /** A raw body (when `json` is not given). */
  body?: Buffer | string;
  headers?: Record<string, string>;
  /** Bounds the whole exchange: connect, send, answer and body. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Largest response body accepted (default 16 MiB). */
  maxResponseBytes?: number;
}

export interface HttpClient {
  request(method: Method, url: string, options?: RequestOptions): Promise<ClientResponse>;
  /** Closes pooled connections. */
  close(): void;
}

export interface HttpClientOptions {
  /** Connections per host (default 64). */
  maxSockets?: number;
}

export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  // LIFO reuses the most recently used connection, so a quiet period lets the extra ones time
  // out. `timeout` closes an idle pooled connection after CLIENT_IDLE_MS (a request in progress
  // is bounded by its own timeoutMs instead).
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64, maxFreeSockets: 16, scheduling: "lifo", timeout: CLIENT_IDLE_MS });
  return {
    request: (method, url, opts = {}) => sendRequest(agent, method, url, opts),
    close: () => agent.destroy(),
  };
}

function sendRequest(agent: Agent, method: Method, url: string, opts: RequestOptions): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    let body: Buffer | string | undefined = opts.body;
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["content-type"] = "application/json";
    }
    if (body !== undefined) headers["content-length"] = Buffer.byteLength(body);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const maxBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
    let settled = false;
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      reject(new HttpClientError("connect", `not a URL: ${url}`));
      return;
    }
    if (opts.signal?.aborted) {
      reject(new HttpClientError("aborted", `${method} ${url}: aborted`, undefined, { cause: opts.signal.reason }));
      return;
    }
    const fail = (err: HttpClientError) => {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      reject(err);
    };
    const req = httpRequest(target, { method, headers, agent });
    const timer = setTimeout(() => fail(new HttpClientError("timeout", `${method} ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => fail(new HttpClientError("aborted", `${method} ${url}: aborted`, undefined, { cause: opts.signal?.reason }));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const cleanup = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    };
    req.on("error", (err: NodeJS.ErrnoException) => {
      fail(new HttpClientError("connect", `${method} ${url}: ${err.code ?? err.message}`, err.code, { cause: err }));
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) fail(new HttpClientError("connect", `${method} ${url}: answer over ${maxBytes} bytes`));
        else chunks.push(chunk);
      });
      res.on("error", (err: NodeJS.ErrnoException) => {
        fail(new HttpClientError("connect", `${method} ${url}: ${err.code ?? err.message}`, err.code, { cause: err }));
      });
      res.on("close", () => {
        if (!res.complete) fail(new HttpClientError("connect", `${method} ${url}: the connection closed mid-answer`, "ECONNRESET"));
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        cleanup();
        const buf = Buffer.concat(chunks, size);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: buf,
          json: () => JSON.parse(buf.toString("utf8")) as unknown,
        });
      });
    });
    req.end(body);
  });
}

/** The Authorization header for a registry token (none without a token). */
export function bearer(token: string | null): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}
