/**
 * An HttpClient that answers from a list of routes in this process, with no socket: unit tests
 * of the registry protocol (heartbeats, TTLs, discovery) run it on a manual clock. `down()` makes
 * every request fail as a refused connection until `up()`.
 */
import type { IncomingMessage } from "node:http";
import { type ClientResponse, type HttpClient, HttpClientError, HttpError, matchPath, type RequestOptions, type Route } from "../../src/runtime/core/http.js";

export interface InMemoryHttp extends HttpClient {
  /** Requests answered or refused so far, as "METHOD /path". */
  readonly requests: string[];
  down(): void;
  up(): void;
  /** Replaces the routes (a restarted server). */
  serve(routes: readonly Route[]): void;
}

const parts = (path: string) => path.split("/").filter((s) => s !== "");

function response(status: number, body: unknown): ClientResponse {
  const text = body === undefined ? "" : JSON.stringify(body);
  return { status, headers: {}, body: Buffer.from(text), json: () => JSON.parse(text) as unknown };
}

export function inMemoryHttp(initial: readonly Route[]): InMemoryHttp {
  let routes = initial;
  let isDown = false;
  const requests: string[] = [];
  return {
    requests,
    down: () => {
      isDown = true;
    },
    up: () => {
      isDown = false;
    },
    serve: (next) => {
      routes = next;
    },
    close: () => {},
    async request(method, url, options: RequestOptions = {}) {
      const { pathname, searchParams } = new URL(url);
      requests.push(`${method} ${pathname}`);
      if (isDown) throw new HttpClientError("connect", `connect ECONNREFUSED ${new URL(url).host}`, "ECONNREFUSED");
      const body = options.json !== undefined ? Buffer.from(JSON.stringify(options.json)) : Buffer.from(options.body ?? "");
      for (const route of routes) {
        if (route.method !== method) continue;
        const params = matchPath(parts(route.path), parts(pathname));
        if (params === null) continue;
        const headers = Object.fromEntries(Object.entries(options.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
        try {
          const reply = await route.handle({
            method,
            path: pathname,
            query: searchParams,
            params,
            headers,
            raw: undefined as unknown as IncomingMessage,
            signal: new AbortController().signal,
            body: async () => body,
            json: async () => JSON.parse(body.toString("utf8")) as unknown,
          });
          return response(reply.status, reply.json ?? reply.text);
        } catch (err) {
          if (err instanceof HttpError) return response(err.status, { error: err.message });
          return response(500, { error: String(err) });
        }
      }
      return response(404, { error: "no route" });
    },
  };
}
