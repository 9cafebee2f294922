import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { InstanceEndpoint } from "../../src/runtime/core/contracts.js";
import { HttpError } from "../../src/runtime/core/http.js";
import type { RunningRole } from "../../src/runtime/process/index.js";
import { groupByService, parseListing } from "../../src/runtime/registry/embedded/discovery.js";
import { InstanceTable, parseRegistration, tokenMatches } from "../../src/runtime/registry/embedded/server.js";
import { cleanupAll } from "../helpers/runtime.js";

const roles: RunningRole[] = [];

afterEach(async () => {
  for (const r of roles.splice(0)) await r.shutdown("test over");
});
afterAll(() => cleanupAll());

const reg = (url: string) => ({ url, weight: 1, capacityPerSec: null });

describe("InstanceTable", () => {
  it("adds, refreshes without a new version, changes, lists in order", () => {
    const table = new InstanceTable(1000, 50);
    expect(table.put("b", 0, reg("http://h:2"), 0)).toBe("added");
    expect(table.put("a", 1, reg("http://h:1"), 0)).toBe("added");
    expect(table.put("a", 0, reg("http://h:0"), 0)).toBe("added");
    expect(table.version).toBe(53);
    expect(table.put("a", 0, reg("http://h:0"), 10)).toBe("refreshed");
    expect(table.version).toBe(53);
    expect(table.put("a", 0, { url: "http://h:0", weight: 2, capacityPerSec: null }, 20)).toBe("changed");
    expect(table.version).toBe(54);
    expect(table.list(null, 20).map((i) => `${i.service}/${i.instance}`)).toEqual(["a/0", "a/1", "b/0"]);
    expect(table.list("a", 20).map((i) => i.instance)).toEqual([0, 1]);
  });

  it("stops listing an instance silent for longer than the ttl, and that is a new version", () => {
    const table = new InstanceTable(1000);
    table.put("a", 0, reg("http://h:0"), 0);
    table.put("a", 1, reg("http://h:1"), 0);
    table.put("a", 1, reg("http://h:1"), 600);
    const v = table.version;
    expect(table.list("a", 1000).length).toBe(2);
    expect(table.version).toBe(v);
    expect(table.list("a", 1001).map((i) => i.instance)).toEqual([1]);
    expect(table.version).toBe(v + 1);
    expect(table.list("a", 1601)).toEqual([]);
    expect(table.version).toBe(v + 2);
  });

  it("deletes, with a new version only when something was listed", () => {
    const table = new InstanceTable(1000);
    table.put("a", 0, reg("http://h:0"), 0);
    const v = table.version;
    expect(table.delete("a", 0, 1)).toBe(true);
    expect(table.version).toBe(v + 1);
    expect(table.delete("a", 0, 2)).toBe(false);
    expect(table.version).toBe(v + 1);
  });
});

describe("registration bodies and tokens", () => {
  it("accepts a registration and fills defaults", () => {
    expect(parseRegistration({ url: "http://127.0.0.1:9100/" })).toEqual({ url: "http://127.0.0.1:9100", weight: 1, capacityPerSec: null });
    expect(parseRegistration({ url: "http://x:1", weight: 2.5, capacityPerSec: 100 })).toEqual({ url: "http://x:1", weight: 2.5, capacityPerSec: 100 });
  });

  it.each([
    [null, /JSON object/],
    [[], /JSON object/],
    [{}, /url/],
    [{ url: "nope" }, /not a URL/],
    [{ url: "ftp://x" }, /http/],
    [{ url: "http://x", weight: 0 }, /weight/],
    [{ url: "http://x", weight: "1" }, /weight/],
    [{ url: "http://x", capacityPerSec: -1 }, /capacityPerSec/],
  ])("refuses %j with 400", (body, message) => {
    try {
      parseRegistration(body);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(400);
      expect((err as Error).message).toMatch(message);
    }
  });

  it("compares bearer tokens", () => {
    expect(tokenMatches("Bearer s3cret", "s3cret")).toBe(true);
    expect(tokenMatches("bearer s3cret ", "s3cret")).toBe(true);
    expect(tokenMatches("Bearer s3cre", "s3cret")).toBe(false);
    expect(tokenMatches("Basic s3cret", "s3cret")).toBe(false);
    expect(tokenMatches(undefined, "s3cret")).toBe(false);
  });

  it("reads a listing defensively", () => {
    const i: InstanceEndpoint = { service: "a", instance: 0, url: "http://h:1", weight: 1, capacityPerSec: null };
    expect(parseListing({ instances: [i], version: 3 })).toEqual({ instances: [i], version: 3 });
    expect(parseListing({ instances: [{ ...i, url: 5 }], version: 3 })).toBeNull();
    expect(parseListing({ instances: [] })).toBeNull();
    expect(parseListing("x")).toBeNull();
    const grouped = groupByService([{ ...i, service: "b" }, { ...i, instance: 1 }, i]);
    expect([...grouped.keys()]).toEqual(["b", "a"]);
    expect(grouped.get("a")?.map((e) => e.instance)).toEqual([0, 1]);
  });
});
