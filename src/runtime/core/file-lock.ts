/**
 * An exclusive lock between processes that share a folder. Node has no flock(), so the lock is
 * a file, `{pid, host, started, token}`, put in place with link(): the holder writes a temporary file and
 * links it to the lock's name, which fails when the name exists. link() is atomic on local file
 * systems and shared volumes alike (it is the classic NFS-safe lock), and the lock file is never
 * seen half-written (where a file system has no hard links, O_EXCL creation takes its place).
 * That is what instances of one sink need, whether they run under one supervisor or in
 * separate containers sharing a volume.
 *
 * A waiter tries again after a short wait, or at once when the lock file changes or goes where
 * the platform can tell (a file watch), so a holder that lets go and wants the lock back soon
 * does not keep it from the others.
 *
 * A holder that crashed leaves its file behind. A lock is stale, and may be broken, when its
 * holder ran on this host and its pid is gone (seen at once: the supervisor's case), or when
 * its file has not been touched for `staleMs` (other hosts and containers, whose pids mean
 * nothing here), or when it names this process's pid on this host but another start time (a
 * restarted container's first process often gets its predecessor's pid and host name). A
 * live holder touches its file every staleMs / 3 so that a long write is not taken for a crash.
 *
 * Breaking renames the stale file aside, then checks that the file moved is the one judged
 * stale (same token): of two waiters breaking at once only one can move it, and a waiter that
 * moved a fresh lock by mistake puts it back (link() again, which fails if the name was taken
 * meanwhile). A holder checks that the lock is still its own (`held()`) before it writes: the
 * name still leads to its file. The holder keeps its lock file open, so that the file's inode
 * number cannot be given to another file while it holds the lock, and compares inode numbers
 * (one stat); where a file system reports none, it reads the token back.
 */
import { randomUUID } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { type FileHandle, link, open, readFile, rename, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";

export interface FileLockOptions {
  /** A lock file untouched for this long belongs to a dead holder. */
  staleMs?: number;
  /** Give up waiting after this long (the error names the holder). */
  timeoutMs?: number;
}

export interface FileLock {
  /** Whether the lock file is still this holder's (false if someone broke it as stale). */
  held(): Promise<boolean>;
  /** Removes the lock file if it is still this holder's. Never throws. */
  release(): Promise<void>;
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
}

/**
 * This host's name, asked once per process: hostname() is a uname() system call, and a sink
 * takes the lock for every group it stores. The name only tells holders on this host (whose
 * pids can be checked) from the others, so a rename while running need not be seen.
 */
let thisHost: string | undefined;

export async function acquireFileLock(path: string, options: FileLockOptions = {}): Promise<FileLock> {
  const staleMs = options.staleMs ?? DEFAULT_LOCK_STALE_MS;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
  thisHost ??= hostname();
  const host = thisHost;
  let wait = 1;
  for (;;) {
    const token = randomUUID();
    const created = await tryCreate(path, host, token);
    if (created !== null) return holdLock(path, token, staleMs, created);
    const holder = await readHolder(path);
    if (holder === null) continue;
    if (isStale(holder, host, staleMs)) {
      await breakLock(path, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      const who = holder.pid === null ? "another process" : `pid ${holder.pid}${holder.host === null ? "" : ` on ${holder.host}`}`;
      throw new Error(`timed out waiting for the lock ${path}, held by ${who}`);
    }
    // Short waits growing to LOCK_POLL_MS, cut short when the lock file changes or goes.
    await waitForChange(path, wait + Math.random() * wait);
    wait = Math.min(wait * 2, LOCK_POLL_MS);
  }
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
async function tryCreate(path: string, host: string, token: string): Promise<FileHandle | null> {
  const content = JSON.stringify({ pid: process.pid, host, started: STARTED, token, at: new Date().toISOString() });
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

function holdLock(path: string, token: string, staleMs: number, file: FileHandle): FileLock {
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
  const touch = setInterval(
    () => {
      const now = new Date();
      isMine()
        .then((mine) => (mine ? utimes(path, now, now) : undefined))
        .catch(() => {
          // A failed touch only risks the lock looking stale later; held() catches that.
        });
    },
    Math.max(1, Math.floor(staleMs / 3)),
  );
  touch.unref();
  let released = false;
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
  const holder: Holder = { token: null, mtimeMs, pid: null, host: null, started: null };
  try {
    const info = JSON.parse(text) as { pid?: unknown; host?: unknown; token?: unknown; started?: unknown };
    if (typeof info.token === "string") holder.token = info.token;
    if (typeof info.pid === "number" && Number.isInteger(info.pid)) holder.pid = info.pid;
    if (typeof info.host === "string") holder.host = info.host;
    if (typeof info.started === "number") holder.started = info.started;
  } catch {
    // Not written by this code: judged by its age alone.
  }
  return holder;
}

function isStale(holder: Holder, host: string, staleMs: number): boolean {
  if (holder.pid !== null && holder.host === host) {
    if (holder.pid !== process.pid && !isAlive(holder.pid)) return true;
    // This pid on this host, started at another time: an earlier process that had the same pid,
    // as a restarted container's first process does (its host name stays).
    if (holder.pid === process.pid && holder.started !== null && holder.started !== STARTED) return true;
  }
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
