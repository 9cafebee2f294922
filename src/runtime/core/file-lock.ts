/**
 * An exclusive lock between processes that share a folder. Node has no flock(), so the lock is
 * a file naming its holder, put in place with link(): the holder writes a temporary file and
 * links it to the lock's name, which fails when the name exists. link() is atomic on local file
 * systems and shared volumes alike (it is the classic NFS-safe lock), and the lock file is never
 * seen half-written (where a file system has no hard links, O_EXCL creation takes its place).
 * The instances of one sink take turns with it, whether they run under one supervisor or in
 * separate containers sharing a volume; a source holds one on its state folder for its life.
 *
 * A waiter tries again after a short wait, or at once when the lock file changes or goes where
 * the platform can tell (a file watch), so a holder that lets go and wants the lock back soon
 * does not keep it from the others.
 *
 * The file names its holder: pid, host name, when the process started (`started`, and on Linux
 * `ticks`, the kernel's start time of the process, and `ns`, its pid namespace). A holder that
 * crashed leaves its file behind, and the lock is broken when its holder is known dead:
 * - on this host (same host name and pid namespace), its pid is gone, or the pid now belongs to
 *   a process that started at another time (the pid was reused; `ticks` tells, on Linux);
 * - it names the pid of the process finding it, under the same host name, but another start
 *   time: a restarted container's first process often gets its predecessor's pid and host name;
 * - elsewhere (another host, another container), where pids mean nothing here, once its file
 *   has not been touched for `staleMs`. A live holder touches its file every staleMs / 3.
 * A live holder on this host is never broken, however long since it touched its file (its
 * event loop may be stalled; it would resume writing).
 *
 * Breaking renames the stale file aside, then checks that the file moved is the one judged
 * stale (same token): of two waiters breaking at once only one can move it, and a waiter that
 * moved a fresh lock by mistake puts it back (link() again, which fails if the name was taken
 * meanwhile). A holder checks that the lock is still its own (`held()`) before it writes: the
 * name still leads to its file. The holder keeps its lock file open, so that the file's inode
 * number cannot be given to another file while it holds the lock, and compares inode numbers
 * (one stat); where a file system reports none, it reads the token back. A holder told
 * `onLost` hears once when its periodic touch finds the lock no longer its own.
 */
import { randomUUID } from "node:crypto";
import { type FSWatcher, readFileSync, readlinkSync, watch } from "node:fs";
import { type FileHandle, link, open, readFile, rename, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";

export interface FileLockOptions {
  /** A lock file untouched for this long belongs to a dead holder (when its holder cannot be checked otherwise). */
  staleMs?: number;
  /** Give up waiting after this long (a FileLockHeldError names the holder). */
  timeoutMs?: number;
  /** Called once if the lock stops being this holder's (broken as stale by another process). */
  onLost?: () => void;
  /** Called once when the lock is found held and the wait begins (with who holds it). */
  onWait?: (holder: LockHolder) => void;
}

export interface FileLock {
  /** Whether the lock file is still this holder's (false if someone broke it as stale). */
  held(): Promise<boolean>;
  /** Removes the lock file if it is still this holder's. Never throws. */
  release(): Promise<void>;
}

/** Who holds a lock, as its file says. */
export interface LockHolder {
  pid: number | null;
  host: string | null;
  /** When the holder took the lock (ISO time), as it wrote. */
  since: string | null;
}

/** Whether a lock's holder is alive: known from its pid on this host, else unknown (judged by the file's age). */
export type HolderState = "alive" | "dead" | "unknown";

/** acquireFileLock gave up: a live holder kept the lock for the whole timeout. */
export class FileLockHeldError extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {
    super(`timed out waiting for the lock ${path}, held by ${describeHolder(holder)}`);
    this.name = "FileLockHeldError";
  }
}

/** "pid 123 on host-a (since …)", or "another process" when the file does not say. */
export function describeHolder(holder: LockHolder): string {
  if (holder.pid === null) return "another process";
  return `pid ${holder.pid}${holder.host === null ? "" : ` on ${holder.host}`}${holder.since === null ? "" : ` (since ${holder.since})`}`;
}

export const DEFAULT_LOCK_STALE_MS = 10_000;
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
/** The longest wait between two tries while the lock file stays as it is. */
const LOCK_POLL_MS = 50;
/** When this process started (ms since the epoch): with pid and host, it names the process. */
const STARTED = performance.timeOrigin;

interface Holder {
  token: string | null;
  mtimeMs: number;
  pid: number | null;
  host: string | null;
  /** When the holder's process started (ms since the epoch). */
  started: number | null;
  /** Linux: the kernel's start time of the holder's process (clock ticks since boot). */
  ticks: number | null;
  /** Linux: the holder's pid namespace. */
  ns: string | null;
  at: string | null;
}

interface Self {
  host: string;
  ticks: number | null;
  ns: string | null;
}

/**
 * This process as a lock file names it, asked once per process: hostname() is a uname() system
 * call, and a sink takes the lock for every group it stores. The host name only tells holders
 * on this host (whose pids can be checked) from the others, so a rename while running need not
 * be seen.
 */
let self: Self | undefined;

function thisProcess(): Self {
  self ??= { host: hostname(), ticks: startTicks(process.pid), ns: pidNamespace() };
  return self;
}

/** Linux: a process's start time in clock ticks since boot (field 22 of /proc/PID/stat); null elsewhere or when unreadable. */
function startTicks(pid: number): number | null {
  try {
    return parseStartTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/** Field 22 of a /proc/PID/stat line. The command name (field 2) may hold spaces and parentheses: count after its closing one. */
export function parseStartTicks(stat: string): number | null {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 3 onwards: field 22 is the 20th of them.
  const value = Number(fields[19]);
  return Number.isSafeInteger(value) && value >= 0 ? value : null;
}

/** Linux: this process's pid namespace (`pid:[INODE]`); null elsewhere. */
function pidNamespace(): string | null {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return null;
  }
}

export async function acquireFileLock(path: string, options: FileLockOptions = {}): Promise<FileLock> {
  const staleMs = options.staleMs ?? DEFAULT_LOCK_STALE_MS;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
  const me = thisProcess();
  let wait = 1;
  let told = false;
  for (;;) {
    const token = randomUUID();
    const created = await tryCreate(path, me, token);
    if (created !== null) return holdLock(path, token, staleMs, created, options.onLost);
    const holder = await readHolder(path);
    if (holder === null) continue;
    if (isStale(holder, judgeHolder(holder, me), staleMs)) {
      await breakLock(path, holder);
      continue;
    }
    if (Date.now() >= deadline) throw new FileLockHeldError(path, holderOf(holder));
    if (!told) {
      told = true;
      options.onWait?.(holderOf(holder));
    }
    // Short waits growing to LOCK_POLL_MS, cut short when the lock file changes or goes.
    await waitForChange(path, wait + Math.random() * wait);
    wait = Math.min(wait * 2, LOCK_POLL_MS);
  }
}

/**
 * Who holds the lock at `path` and whether they are alive, without taking it; null when nobody
 * does (no file, or one whose holder is known dead or, judged by age, stale).
 */
export async function inspectFileLock(path: string, staleMs = DEFAULT_LOCK_STALE_MS): Promise<{ holder: LockHolder; state: HolderState } | null> {
  const holder = await readHolder(path);
  if (holder === null) return null;
  const state = judgeHolder(holder, thisProcess());
  if (isStale(holder, state, staleMs)) return null;
  return { holder: holderOf(holder), state };
}

function holderOf(holder: Holder): LockHolder {
  return { pid: holder.pid, host: holder.host, since: holder.at };
}

/**
 * Resolves after `ms`, or as soon as the file at `path` changes or goes, where the platform
 * tells (inotify, FSEvents; network file systems do not, and then the timer stands): a waiter
 * then tries the moment the holder lets go, rather than at its next poll.
 */
export function waitForChange(path: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let watcher: FSWatcher | undefined;
    const done = () => {
      clearTimeout(timer);
      watcher?.close();
      resolve();
    };
    const timer = setTimeout(done, ms);
    try {
      watcher = watch(path, { persistent: false }, done);
      watcher.on("error", done);
    } catch (err) {
      // Gone already: try again now. Not watchable here (no inotify watches left, say): the timer stands.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") done();
    }
  });
}

/** File systems that refuse hard links answer link() with one of these. */
const NO_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV"]);

/** Creates `path` exclusively with `content`; the open file, or null when the name is taken. */
async function createExclusive(path: string, content: string): Promise<FileHandle | null> {
  let handle: FileHandle;
  try {
    handle = await open(path, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return null;
    throw err;
  }
  try {
    await writeFile(handle, content);
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Puts a complete lock file in place; its open handle, or null when the name is taken. */
async function tryCreate(path: string, me: Self, token: string): Promise<FileHandle | null> {
  const content = JSON.stringify({ pid: process.pid, host: me.host, started: STARTED, ticks: me.ticks, ns: me.ns, token, at: new Date().toISOString() });
  const temp = `${path}.${token}.tmp`;
  const handle = await createExclusive(temp, content);
  if (handle === null) throw new Error(`${temp} exists already`);
  try {
    await link(temp, path);
    return handle;
  } catch (err) {
    await handle.close();
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (code === "EEXIST") return null;
    if (!NO_LINKS.has(code)) throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  // No hard links here: O_EXCL creation is just as exclusive; a reader may only catch the file
  // before its content is written, and then judges it by its age.
  return createExclusive(path, content);
}

function holdLock(path: string, token: string, staleMs: number, file: FileHandle, onLost?: () => void): FileLock {
  // The open file pins its inode number: while it is open no other file can get it, so the
  // name leading to that inode means the lock is still this one.
  const pinned = file.stat().catch(() => null);
  const isMine = async (): Promise<boolean> => {
    const own = await pinned;
    if (own !== null && own.ino !== 0) {
      try {
        const now = await stat(path);
        return now.ino === own.ino && now.dev === own.dev;
      } catch {
        return false;
      }
    }
    return (await readHolder(path).catch(() => null))?.token === token;
  };
  let released = false;
  let lost = false;
  const touch = setInterval(
    () => {
      const now = new Date();
      isMine()
        .then((mine) => {
          if (mine) return utimes(path, now, now);
          if (!released && !lost) {
            lost = true;
            onLost?.();
          }
          return undefined;
        })
        .catch(() => {
          // A failed touch only risks the lock looking stale later; held() catches that.
        });
    },
    Math.max(1, Math.floor(staleMs / 3)),
  );
  touch.unref();
  return {
    // Once released the file is closed and its inode number free again: never held.
    held: async () => !released && (await isMine()),
    async release() {
      if (released) return;
      released = true;
      clearInterval(touch);
      try {
        if (await isMine()) await unlink(path);
      } catch {
        // Already gone: nothing to release.
      } finally {
        await file.close().catch(() => undefined);
      }
    },
  };
}

async function readHolder(path: string): Promise<Holder | null> {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const holder: Holder = { token: null, mtimeMs, pid: null, host: null, started: null, ticks: null, ns: null, at: null };
  try {
    const info = JSON.parse(text) as Record<string, unknown>;
    if (typeof info.token === "string") holder.token = info.token;
    if (typeof info.pid === "number" && Number.isInteger(info.pid) && info.pid > 0) holder.pid = info.pid;
    if (typeof info.host === "string") holder.host = info.host;
    if (typeof info.started === "number") holder.started = info.started;
    if (typeof info.ticks === "number" && Number.isSafeInteger(info.ticks)) holder.ticks = info.ticks;
    if (typeof info.ns === "string") holder.ns = info.ns;
    if (typeof info.at === "string") holder.at = info.at;
  } catch {
    // Not written by this code: judged by its age alone.
  }
  return holder;
}

/** Whether the holder is alive, as far as this process can tell (see the file's comment). */
function judgeHolder(holder: Holder, me: Self): HolderState {
  if (holder.pid === null || holder.host !== me.host) return "unknown";
  if (holder.pid === process.pid) {
    // This pid under this host name, started at another time: an earlier process that had the
    // same pid, as a restarted container's first process does (its host name stays).
    return holder.started !== null && holder.started !== STARTED ? "dead" : holder.started === STARTED ? "alive" : "unknown";
  }
  // Another pid namespace (another container under the same host name): its pids mean nothing here.
  if (holder.ns !== null && me.ns !== null && holder.ns !== me.ns) return "unknown";
  if (!isAlive(holder.pid)) return "dead";
  // The pid is taken; by the holder, unless it was reused since (the kernel's start time tells).
  if (holder.ticks !== null) {
    const ticks = startTicks(holder.pid);
    if (ticks !== null && ticks !== holder.ticks) return "dead";
  }
  return "alive";
}

function isStale(holder: Holder, state: HolderState, staleMs: number): boolean {
  if (state !== "unknown") return state === "dead";
  return Date.now() - holder.mtimeMs > staleMs;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function breakLock(path: string, stale: Holder): Promise<void> {
  const aside = `${path}.stale-${randomUUID()}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    const moved = await readHolder(aside);
    const same = moved !== null && moved.token === stale.token && (stale.token !== null || moved.mtimeMs === stale.mtimeMs);
    if (!same) {
      // Another waiter broke the stale lock first and a new holder took the name: give it back.
      await link(aside, path).catch(() => undefined);
    }
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}
