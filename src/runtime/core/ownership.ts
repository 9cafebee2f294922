/**
 * Who owns a piece of a state folder. One process at a time may write a source's durable log
 * (`STATE_DIR/sources/NAME/`), and one supervisor at a time may run a system on a state folder:
 * two writers of one log would store the same records under two batch ids. Each owner holds a
 * lock file (file-lock.ts) for its life:
 *
 * - `STATE_DIR/sources/NAME/owner.lock`, taken by a source before it reads its log;
 * - `STATE_DIR/supervisor.lock`, taken by the supervisor before it starts a child (and looked
 *   at by `mbc run`, which says which runtime runs instead of starting a second one).
 *
 * A second claimant waits up to the lock's stale time (a holder that is shutting down lets go
 * meanwhile), then fails with an OwnershipError naming the holder, and the process exits 2.
 * The lock of a dead holder is broken at once on its host, elsewhere once it is stale; a live
 * holder's never.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "./contracts.js";
import {
  acquireFileLock,
  DEFAULT_LOCK_STALE_MS,
  describeHolder,
  type FileLock,
  FileLockHeldError,
  type HolderState,
  inspectFileLock,
  type LockHolder,
} from "./file-lock.js";

/** How long a lock file may go untouched before a holder that cannot be checked by pid is taken for dead; also how long a second claimant waits. */
export const OWNER_LOCK_STALE_MS = DEFAULT_LOCK_STALE_MS;

/** The lock of a source's state folder. */
export function sourceOwnerLock(stateDir: string, source: string): string {
  return join(stateDir, "sources", source, "owner.lock");
}

/** The lock of the supervisor that runs a system on a state folder. */
export function supervisorLock(stateDir: string): string {
  return join(stateDir, "supervisor.lock");
}

/** Another process owns what this one was to own: the process exits 2. */
export class OwnershipError extends Error {
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly holder: LockHolder,
  ) {
    super(message);
    this.name = "OwnershipError";
  }
}

export interface OwnershipClaim {
  /** The lock file. */
  path: string;
  /** What is owned, for messages: "source orders's state folder /srv/state/sources/orders". */
  what: string;
  /** How to get out of the way, for the error: "stop it, or give this process another MBC_STATE_DIR". */
  hint: string;
  log: Logger;
  /** Called once if another process breaks the lock (it judged this one dead): stop writing. */
  onLost?: () => void;
  staleMs?: number;
}

/** Takes the lock, waiting up to its stale time for a live holder; an OwnershipError names the holder. */
export async function takeOwnership(claim: OwnershipClaim): Promise<FileLock> {
  const staleMs = claim.staleMs ?? OWNER_LOCK_STALE_MS;
  await mkdir(join(claim.path, ".."), { recursive: true });
  try {
    return await acquireFileLock(claim.path, {
      staleMs,
      timeoutMs: staleMs,
      onLost: claim.onLost,
      onWait: (holder) =>
        claim.log.warn(`${claim.what} is owned by another process: waiting for it to let go`, {
          holder: describeHolder(holder),
          pid: holder.pid,
          host: holder.host,
          waitMs: staleMs,
        }),
    });
  } catch (err) {
    if (!(err instanceof FileLockHeldError)) throw err;
    throw new OwnershipError(`${claim.what} is owned by ${describeHolder(err.holder)} (lock ${claim.path}); ${claim.hint}`, err.holder);
  }
}

/** Who owns what the lock at `path` guards, if anyone (a holder known dead, or stale, owns nothing). */
export function findOwner(path: string, staleMs = OWNER_LOCK_STALE_MS): Promise<{ holder: LockHolder; state: HolderState } | null> {
  return inspectFileLock(path, staleMs);
}
