/**
 * An etcd cluster in memory, as its JSON gateway answers (etcd 3.4's `/v3/...`: base64 keys and
 * values, 64-bit numbers as strings, proto3's habit of leaving out false, zero and empty fields),
 * with leases that run out on a test's clock. Each endpoint can be taken down and brought back;
 * `users` turns authentication on. For the etcd backend's unit tests.
 */
import type { Clock } from "../../src/runtime/core/clock.js";
import type { Transport } from "../../src/runtime/registry/etcd/gateway.js";

interface Kv {
  value: string;
  lease: string;
  createRevision: number;
  modRevision: number;
}

const dec = (b: unknown) => Buffer.from(String(b ?? ""), "base64").toString("utf8");
const enc = (s: string) => Buffer.from(s, "utf8").toString("base64");

export class FakeEtcd {
  readonly kvs = new Map<string, Kv>();
  readonly leases = new Map<string, { ttl: number; expiresAt: number }>();
  readonly down = new Set<string>();
  /** Every request: endpoint and path. */
  readonly calls: { endpoint: string; path: string }[] = [];
  users: Map<string, string> | null = null;
  readonly tokens = new Set<string>();
  private revision = 1;
  private nextLease = 7_000_000_000_000_000_000n;
  private nextToken = 1;

  constructor(private readonly clock: Clock) {}

  /** The value of a key, or undefined. */
  value(key: string): string | undefined {
    this.expire();
    return this.kvs.get(key)?.value;
  }

  put(key: string, value: string): void {
    this.kvs.set(key, { value, lease: "0", createRevision: ++this.revision, modRevision: this.revision });
  }

  private expire(): void {
    const now = this.clock.now();
    for (const [id, l] of this.leases) if (l.expiresAt <= now) this.dropLease(id);
  }

  private dropLease(id: string): void {
    this.leases.delete(id);
    let changed = false;
    for (const [k, kv] of this.kvs) {
      if (kv.lease === id) {
        this.kvs.delete(k);
        changed = true;
      }
    }
    if (changed) this.revision++;
  }

  private header() {
    return { cluster_id: "1", member_id: "2", revision: String(this.revision), raft_term: "2" };
  }

  private error(status: number, code: number, message: string) {
    return { status, body: { error: message, message, code } };
  }

  private rangeOf(key: string, rangeEnd: string | null) {
    const kvs = [...this.kvs.entries()]
      .filter(([k]) =>
        rangeEnd === null ? k === key : Buffer.compare(Buffer.from(k), Buffer.from(key)) >= 0 && Buffer.compare(Buffer.from(k), Buffer.from(rangeEnd)) < 0,
      )
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, kv]) => ({
        key: enc(k),
        create_revision: String(kv.createRevision),
        mod_revision: String(kv.modRevision),
        version: "1",
        value: enc(kv.value),
        ...(kv.lease !== "0" ? { lease: kv.lease } : {}),
      }));
    return { header: this.header(), ...(kvs.length > 0 ? { kvs, count: String(kvs.length) } : {}) };
  }

  readonly transport: Transport = async (endpoint, path, body, headers) => {
    this.calls.push({ endpoint, path });
    if (this.down.has(endpoint)) throw new Error("ECONNREFUSED");
    this.expire();
    const b = body as Record<string, unknown>;
    if (path === "/v3/auth/authenticate") {
      if (this.users === null) return this.error(400, 9, "etcdserver: authentication is not enabled");
      if (this.users.get(String(b.name)) !== b.password) return this.error(400, 3, "etcdserver: authentication failed, invalid user ID or password");
      const token = `token.${this.nextToken++}`;
      this.tokens.add(token);
      return { status: 200, body: { header: this.header(), token } };
    }
    if (this.users !== null) {
      const token = headers.authorization;
      if (token === undefined) return this.error(400, 3, "etcdserver: user name is empty");
      if (!this.tokens.has(token)) return this.error(401, 16, "etcdserver: invalid auth token");
    }
    switch (path) {
      case "/v3/lease/grant": {
        const id = String(this.nextLease++);
        const ttl = Number(b.TTL);
        this.leases.set(id, { ttl, expiresAt: this.clock.now() + ttl * 1000 });
        return { status: 200, body: { header: this.header(), ID: id, TTL: String(ttl) } };
      }
      case "/v3/lease/keepalive": {
        const id = String(b.ID);
        const lease = this.leases.get(id);
        if (lease === undefined) return { status: 200, body: { result: { header: this.header(), ID: id } } };
        lease.expiresAt = this.clock.now() + lease.ttl * 1000;
        return { status: 200, body: { result: { header: this.header(), ID: id, TTL: String(lease.ttl) } } };
      }
      case "/v3/lease/revoke": {
        const id = String(b.ID);
        if (!this.leases.has(id)) return this.error(404, 5, "etcdserver: requested lease not found");
        this.dropLease(id);
        return { status: 200, body: { header: this.header() } };
      }
      case "/v3/kv/range":
        return { status: 200, body: this.rangeOf(dec(b.key), b.range_end === undefined ? null : dec(b.range_end)) };
      case "/v3/kv/txn": {
        const compare = (b.compare as { key: string; target: string; create_revision: string }[])[0];
        if (compare === undefined || compare.target !== "CREATE" || compare.create_revision !== "0") return this.error(400, 3, "fake etcd: unexpected compare");
        const key = dec(compare.key);
        if (!this.kvs.has(key)) {
          const put = (b.success as { request_put: { key: string; value: string; lease: string } }[])[0]?.request_put;
          if (put === undefined) return this.error(400, 3, "fake etcd: no put");
          if (!this.leases.has(put.lease)) return this.error(404, 5, "etcdserver: requested lease not found");
          this.revision++;
          this.kvs.set(dec(put.key), { value: dec(put.value), lease: put.lease, createRevision: this.revision, modRevision: this.revision });
          return { status: 200, body: { header: this.header(), succeeded: true, responses: [{ response_put: { header: this.header() } }] } };
        }
        return { status: 200, body: { header: this.header(), responses: [{ response_range: this.rangeOf(key, null) }] } };
      }
      default:
        return { status: 404, body: null };
    }
  };
}
