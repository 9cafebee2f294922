/**
 * Fixed ports for the tests that need them (a spec's port, a published container port), where the
 * process under test cannot bind port 0 and report the port it got (the e2e helpers do that).
 *
 * A probe that a port is free is not enough: another test file running in parallel may probe the
 * same port before either binds it, and a port in the ephemeral range may become an outgoing
 * connection's local port. So a block is taken below the ephemeral range and reserved across
 * every test process of the run: a file per port under the temp folder, created exclusively and
 * naming the reserving process; a reservation whose process is gone is taken over. Reservations
 * last until the test process exits.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const reservations = join(tmpdir(), "mbc-test-ports");
const mine = new Set<string>();
let cleanupInstalled = false;

/** The first port the system hands out to outgoing connections (Linux: ip_local_port_range). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    // Not Linux: the IANA range starts at 49152, Linux's default at 32768.
  }
  return 32768;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Reserves `port` for this process; false when a live process holds it. */
function reserve(port: number): boolean {
  const path = join(reservations, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      mine.add(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let holder = Number.NaN;
    try {
      holder = Number(readFileSync(path, "utf8"));
    } catch {
      // Released meanwhile: try again.
      continue;
    }
    // Being written (empty) or held by a live process: not ours to take.
    if (!Number.isInteger(holder) || holder <= 0 || alive(holder)) return false;
    rmSync(path, { force: true });
  }
  return false;
}

function release(ports: readonly string[]): void {
  for (const path of ports) {
    rmSync(path, { force: true });
    mine.delete(path);
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive ports on 127.0.0.1, free and reserved for this test process; returns the first. */
export async function freePortBlock(count: number): Promise<number> {
  mkdirSync(reservations, { recursive: true });
  if (!cleanupInstalled) {
    cleanupInstalled = true;
    process.once("exit", () => release([...mine]));
  }
  const low = 15_000;
  const high = Math.max(low + 1000, Math.min(ephemeralLow(), 32_768)) - count;
  for (let attempt = 0; attempt < 500; attempt++) {
    const base = low + Math.floor(Math.random() * (high - low));
    const taken: string[] = [];
    let ok = true;
    for (let k = 0; k < count && ok; k++) {
      ok = reserve(base + k);
      if (ok) taken.push(join(reservations, String(base + k)));
    }
    for (let k = 0; k < count && ok; k++) ok = await portFree(base + k);
    if (ok) return base;
    release(taken);
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
