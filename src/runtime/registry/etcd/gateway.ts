/**
 * A client of etcd v3's gRPC-JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/lease/grant`,
 * `/v3/lease/keepalive`, `/v3/lease/revoke`, `/v3/auth/authenticate`: JSON bodies, keys and values
 * in base64, 64-bit numbers as strings), which every etcd since 3.4 serves on its client port.
 * It speaks through a Transport (one HTTP exchange), so its tests run against a fake cluster.
 *
 * Endpoints are tried in turn: the one that answered last is asked first, and one that cannot be
 * reached, times out or answers unavailable (5xx: no leader, shutting down) passes the request to
 * the next; a request etcd refuses as such (4xx) is not tried elsewhere. With a user and password
 * the client authenticates first and sends the token with every request; a token etcd no longer
 * takes (expired, or the member restarted) is renewed once per request.
 */

/** One HTTP exchange with an endpoint; throws when no answer came (refused, reset, timeout). */
export type Transport = (
  endpoint: string,
  path: string,
  body: unknown,
  headers: Readonly<Record<string, string>>,
) => Promise<{ status: number; body: unknown }>;

/** etcd answered, with an error (its gRPC code and message). */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly status: number,
  ) {
    super(message);
    this.name = "EtcdError";
  }
}

/** No endpoint gave an answer. */
export class EtcdUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EtcdUnreachableError";
  }
}

/** gRPC status codes etcd uses that the client acts on. */
export const GRPC = { invalidArgument: 3, deadlineExceeded: 4, notFound: 5, failedPrecondition: 9, unavailable: 14, unauthenticated: 16 } as const;

export interface EtcdClientOptions {
  endpoints: readonly string[];
  transport: Transport;
  /** MBC_REGISTRY_USER and MBC_REGISTRY_PASSWORD, or null. */
  auth: { user: string; password: string } | null;
}

export interface EtcdClient {
  /** Sends one request, failing over between endpoints; the answer's JSON. */
  call(path: string, body: unknown): Promise<Record<string, unknown>>;
  /** The endpoint asked first: the one that answered last. */
  readonly endpoint: string;
}

/** The error an answer carries, or null for a good one. A streamed answer (lease/keepalive) wraps either in `result` or `error`. */
function errorOf(status: number, body: unknown): EtcdError | null {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const streamed = typeof b.error === "object" && b.error !== null ? (b.error as Record<string, unknown>) : null;
  if (status === 200 && streamed === null) return null;
  const e = streamed ?? b;
  const code = typeof e.code === "number" ? e.code : typeof e.grpc_code === "number" ? e.grpc_code : null;
  const httpCode = streamed !== null && typeof e.http_code === "number" ? e.http_code : status;
  const message = typeof e.message === "string" ? e.message : typeof e.error === "string" ? e.error : `HTTP ${status}`;
  return new EtcdError(message, code, httpCode);
}

/** An answer the next endpoint may give better: no leader, a member shutting down, a timeout inside etcd. */
function unavailable(err: EtcdError): boolean {
  return err.status >= 500 || err.code === GRPC.unavailable || err.code === GRPC.deadlineExceeded;
}

export function createEtcdClient(options: EtcdClientOptions): EtcdClient {
  const { endpoints, transport, auth } = options;
  if (endpoints.length === 0) throw new Error("etcd needs at least one endpoint");
  let current = 0;
  // Per endpoint: etcd's tokens (simple tokens) are known only to the member that issued them.
  const tokens = new Map<string, string | null>();

  const authenticate = async (endpoint: string): Promise<string | null> => {
    if (auth === null) return null;
    const known = tokens.get(endpoint);
    if (known !== undefined) return known;
    const res = await transport(endpoint, "/v3/auth/authenticate", { name: auth.user, password: auth.password }, {});
    const err = errorOf(res.status, res.body);
    if (err !== null) {
      // A cluster without authentication takes requests without a token.
      if (err.code === GRPC.failedPrecondition && /not enabled/.test(err.message)) {
        tokens.set(endpoint, null);
        return null;
      }
      if (unavailable(err)) throw err;
      throw new EtcdError(`etcd refused the credentials of MBC_REGISTRY_USER ${JSON.stringify(auth.user)}: ${err.message}`, err.code, err.status);
    }
    const token = (res.body as { token?: unknown }).token;
    if (typeof token !== "string" || token === "") throw new EtcdError("etcd's answer to authenticate has no token", null, res.status);
    tokens.set(endpoint, token);
    return token;
  };

  const once = async (endpoint: string, path: string, body: unknown): Promise<{ status: number; body: unknown }> => {
    const token = await authenticate(endpoint);
    return transport(endpoint, path, body, token === null ? {} : { authorization: token });
  };

  return {
    get endpoint() {
      return endpoints[current] as string;
    },
    async call(path, body) {
      let last: Error | null = null;
      for (let tried = 0; tried < endpoints.length; tried++) {
        const endpoint = endpoints[current] as string;
        try {
          let res = await once(endpoint, path, body);
          let err = errorOf(res.status, res.body);
          if (err?.code === GRPC.unauthenticated && auth !== null) {
            tokens.delete(endpoint);
            res = await once(endpoint, path, body);
            err = errorOf(res.status, res.body);
          }
          if (err === null) return (res.body ?? {}) as Record<string, unknown>;
          if (!unavailable(err)) throw err;
          last = new Error(`${endpoint}: ${err.message}`);
        } catch (err) {
          if (err instanceof EtcdError && !unavailable(err)) throw err;
          last = new Error(`${endpoint}: ${err instanceof Error ? err.message : String(err)}`);
        }
        current = (current + 1) % endpoints.length;
      }
      throw new EtcdUnreachableError(`no etcd endpoint answered (${last?.message ?? "no endpoints"})`);
    },
  };
}

/** A key or value as the gateway carries it. */
export function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

export function fromB64(text: unknown): string | null {
  return typeof text === "string" ? Buffer.from(text, "base64").toString("utf8") : null;
}

/** The end (base64) of the range of every key that starts with `prefix`: its last byte plus one. */
export function rangeEndOf(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  for (let i = bytes.length - 1; i >= 0; i--) {
    if ((bytes[i] as number) < 0xff) {
      bytes[i] = (bytes[i] as number) + 1;
      return bytes.subarray(0, i + 1).toString("base64");
    }
  }
  // Every byte is 0xff: to the end of the key space.
  return Buffer.from([0]).toString("base64");
}
