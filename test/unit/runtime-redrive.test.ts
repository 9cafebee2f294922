/**
 * Redrive on a manual clock: `dead-letter list` and `replay` move files and nothing else; the
 * owning source sends its replayed entries again under their ids, deletes them once stored,
 * puts one that is still poison back among the dead letters, and keeps one that finds a stage
 * unavailable for later.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runDeadLetterCommand } from "../../src/runtime/dead-letter-command.js";
import { deadLetterDir, writeDeadLetter } from "../../src/runtime/source/dead-letter.js";
import { listDeadLetters, queueReplay, Redriver, replayDir } from "../../src/runtime/source/redrive.js";
import { ManualClock } from "../helpers/clock.js";
import { BACKOFF, FakeDispatcher, failedAs, memoryLogger } from "../helpers/pipeline.js";
import { cleanupAll, tempDir, waitUntil } from "../helpers/runtime.js";

afterAll(() => cleanupAll());

/** A state folder with poison records of two sources dead-lettered. */
async function stateWithLetters(): Promise<string> {
  const stateDir = tempDir("mbc-redrive-");
  const poison = failedAs("poison", "x");
  await writeDeadLetter(stateDir, { id: "orders-0@3-4", via: ["orders"], records: [{ n: 3 }], texts: ['{"n":3}'] }, poison);
  await writeDeadLetter(stateDir, { id: "orders-200@7-8", via: ["orders"], records: [{ n: 207 }], texts: ['{"n": 207}'] }, poison);
  await writeDeadLetter(stateDir, { id: "clicks-0@0-1", via: ["clicks"], records: [{ c: 1 }] }, poison);
  return stateDir;
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe("dead-letter list and replay", () => {
  it("list shows every entry not queued for replay; replay moves entries to the replay folder, and says which it cannot find", async () => {
    const stateDir = await stateWithLetters();
    expect((await listDeadLetters(stateDir)).map((e) => [e.id, e.source, e.records, e.service])).toEqual([
      ["clicks-0@0-1", "clicks", 1, "sink"],
      ["orders-0@3-4", "orders", 1, "sink"],
      ["orders-200@7-8", "orders", 1, "sink"],
    ]);
    const first = await queueReplay(stateDir, ["orders-0@3-4", "nope"]);
    expect(first).toEqual({ queued: ["orders-0@3-4"], already: [], missing: ["nope"] });
    expect((await listDeadLetters(stateDir)).map((e) => e.id)).toEqual(["clicks-0@0-1", "orders-200@7-8"]);
    expect(readdirSync(replayDir(stateDir))).toEqual(["orders-0@3-4.json"]);
    // Asked twice: it is on its way already, nothing is moved or copied.
    expect(await queueReplay(stateDir, ["orders-0@3-4"])).toEqual({ queued: [], already: ["orders-0@3-4"], missing: [] });
    expect((await queueReplay(stateDir, "all")).queued).toEqual(["clicks-0@0-1", "orders-200@7-8"]);
    expect(await listDeadLetters(stateDir)).toEqual([]);
  });

  it("the command: a table or JSON, exit 2 for a usage slip or an id that is not there", async () => {
    const stateDir = await stateWithLetters();
    const listed = io();
    expect(await runDeadLetterCommand(["list"], stateDir, listed.io)).toBe(0);
    const lines = listed.out.join("").trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+SOURCE\s+RECORDS\s+SERVICE\s+FAILED AT\s+ERROR$/);
    expect(lines.slice(1, 4).map((l) => l.split(/\s+/)[0])).toEqual(["clicks-0@0-1", "orders-0@3-4", "orders-200@7-8"]);
    const json = io();
    expect(await runDeadLetterCommand(["list", "--json"], stateDir, json.io)).toBe(0);
    expect((JSON.parse(json.out.join("")) as { deadLetters: unknown[] }).deadLetters).toHaveLength(3);

    for (const argv of [[], ["frob"], ["replay"], ["replay", "--all", "x"], ["list", "x"], ["list", "--bogus"]]) {
      const r = io();
      expect(await runDeadLetterCommand(argv, stateDir, r.io), argv.join(" ")).toBe(2);
      expect(r.err.join(""), argv.join(" ")).toMatch(/usage: dead-letter/);
    }
    const missing = io();
    expect(await runDeadLetterCommand(["replay", "orders-0@3-4", "gone"], stateDir, missing.io)).toBe(2);
    expect(missing.err.join("")).toContain('no dead letter "gone"');
    expect(existsSync(join(replayDir(stateDir), "orders-0@3-4.json"))).toBe(true);
  });
});

describe("a source replays its own entries", () => {
  const redriver = (stateDir: string, dispatcher: FakeDispatcher, clock: ManualClock) =>
    new Redriver({ stateDir, source: "orders", to: "sink", dispatcher, log: memoryLogger(), backoff: BACKOFF, clock, pollMs: 1000 });

  it("sends them under their ids, with the texts as logged, and deletes each once stored; another source's stay", async () => {
    const stateDir = await stateWithLetters();
    await queueReplay(stateDir, "all");
    const clock = new ManualClock();
    const dispatcher = new FakeDispatcher("ok");
    const r = redriver(stateDir, dispatcher, clock);
    r.start();
    await r.settled();
    expect(dispatcher.sent.map((s) => [s.to, s.batch.id, s.batch.records])).toEqual([
      [["sink"], "orders-0@3-4", [{ n: 3 }]],
      [["sink"], "orders-200@7-8", [{ n: 207 }]],
    ]);
    expect(readdirSync(replayDir(stateDir))).toEqual(["clicks-0@0-1.json"]);
    await r.stop();
  });

  it("picks up an entry queued while it runs at its next look", async () => {
    const stateDir = await stateWithLetters();
    const clock = new ManualClock();
    const dispatcher = new FakeDispatcher("ok");
    const r = redriver(stateDir, dispatcher, clock);
    r.start();
    await r.settled();
    expect(dispatcher.sent).toEqual([]);
    await queueReplay(stateDir, ["orders-0@3-4"]);
    await clock.advance(1000);
    await waitUntil(() => dispatcher.sent.length === 1, "the replayed entry sent");
    await r.settled();
    expect(existsSync(join(replayDir(stateDir), "orders-0@3-4.json"))).toBe(false);
    await r.stop();
  });

  it("puts an entry that is still poison back among the dead letters, with the new failure", async () => {
    const stateDir = await stateWithLetters();
    await queueReplay(stateDir, ["orders-0@3-4"]);
    const clock = new ManualClock();
    const dispatcher = new FakeDispatcher("rule");
    dispatcher.answer = () => "poison";
    const r = redriver(stateDir, dispatcher, clock);
    r.start();
    await r.settled();
    expect(readdirSync(replayDir(stateDir))).toEqual([]);
    const back = JSON.parse(readFileSync(join(deadLetterDir(stateDir), "orders-0@3-4.json"), "utf8")) as { failures: unknown[]; texts: string[] };
    expect(back.failures).toHaveLength(2);
    expect(back.texts).toEqual(['{"n":3}']);
    await r.stop();
  });

  it("keeps an entry that finds a stage unavailable, and sends it again after its back-off", async () => {
    const stateDir = await stateWithLetters();
    await queueReplay(stateDir, ["orders-0@3-4"]);
    const clock = new ManualClock();
    const dispatcher = new FakeDispatcher("rule");
    let down = true;
    dispatcher.answer = () => (down ? "unavailable" : null);
    const r = redriver(stateDir, dispatcher, clock);
    r.start();
    await r.settled();
    expect(dispatcher.sent).toHaveLength(1);
    expect(readdirSync(replayDir(stateDir))).toEqual(["orders-0@3-4.json"]);
    down = false;
    await clock.advance(1000);
    await waitUntil(() => dispatcher.sent.length === 2, "sent again");
    await r.settled();
    expect(readdirSync(replayDir(stateDir))).toEqual([]);
    expect(await listDeadLetters(stateDir)).toHaveLength(2);
    await r.stop();
  });
});
