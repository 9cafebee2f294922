/**
 * Redrive: sending dead letters again once what made them fail is fixed.
 *
 * `dead-letter list` shows the entries of `STATE_DIR/dead-letter/`; `dead-letter replay ID… |
 * --all` moves them into `STATE_DIR/dead-letter/replay/` (a rename: nothing is copied or
 * rewritten). The source a batch came from (its `via[0]`) owns its replay: it watches that
 * folder while it runs, and reads it at start, and sends each of its entries again under the
 * same id, so a sink that stored it already skips it (replaying twice stores once). Once stored,
 * the entry is deleted; one that fails as poison again goes back to the dead letters with the new
 * failure added; one that finds a stage unavailable waits and is sent again later, as a batch
 * would. The command never writes a log it does not own: it only moves files.
 */
import { type FSWatcher, watch } from "node:fs";
import { mkdir, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { RetryModel } from "../../model/types.js";
import { retryDelay } from "../../retry/index.js";
import type { Random } from "../../shared/random.js";
import { type Clock, systemClock, type TimerHandle } from "../core/clock.js";
import type { Dispatcher, Logger, TextBatch } from "../core/contracts.js";
import { type DeadLetter, deadLetterDir, writeDeadLetter } from "./dead-letter.js";

/** The folder the owning sources take replayed dead letters from. */
export function replayDir(stateDir: string): string {
  return join(deadLetterDir(stateDir), "replay");
}

/** What `dead-letter list` shows of an entry. */
export interface DeadLetterSummary {
  id: string;
  /** The source it came from (its `via[0]`). */
  source: string;
  records: number;
  /** The service of its last failure, when known. */
  service: string | null;
  /** When it last failed (ISO 8601). */
  at: string | null;
  error: string;
  /** The file, relative to the dead-letter folder. */
  file: string;
}

/** A dead-letter file's entry, or null when the file is not one (a temporary file, something else). */
export async function readDeadLetter(path: string): Promise<DeadLetter | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as Partial<DeadLetter>;
    if (typeof v.id === "string" && Array.isArray(v.via) && Array.isArray(v.records) && Array.isArray(v.failures)) return v as DeadLetter;
  } catch {
    // Damaged, or not ours.
  }
  return null;
}

/** The entries of a folder of dead letters, in file-name order. */
async function entriesIn(dir: string): Promise<{ file: string; letter: DeadLetter }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: { file: string; letter: DeadLetter }[] = [];
  for (const file of names.filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort()) {
    const letter = await readDeadLetter(join(dir, file));
    if (letter !== null) out.push({ file, letter });
  }
  return out;
}

/** Every dead letter of a state folder that is not queued for replay. */
export async function listDeadLetters(stateDir: string): Promise<DeadLetterSummary[]> {
  return (await entriesIn(deadLetterDir(stateDir))).map(({ file, letter }) => {
    const last = letter.failures[letter.failures.length - 1];
    return {
      id: letter.id,
      source: letter.via[0] ?? "",
      records: letter.records.length,
      service: last?.service ?? null,
      at: last?.at ?? null,
      error: last?.error ?? "",
      file,
    };
  });
}

export interface ReplayRequest {
  /** Moved into the replay folder now. */
  queued: string[];
  /** Already in the replay folder (asked for before, not stored yet). */
  already: string[];
  /** No dead letter has this id. */
  missing: string[];
}

/**
 * Moves the dead letters with these ids (or every one) into the replay folder, for their
 * sources to send again. A rename in one folder: atomic, and it writes nothing the sources own.
 */
export async function queueReplay(stateDir: string, ids: readonly string[] | "all"): Promise<ReplayRequest> {
  const dir = deadLetterDir(stateDir);
  const target = replayDir(stateDir);
  const here = await entriesIn(dir);
  const queuedBefore = new Map((await entriesIn(target)).map((e) => [e.letter.id, e.file]));
  const byId = new Map(here.map((e) => [e.letter.id, e.file]));
  const wanted = ids === "all" ? [...byId.keys()] : [...new Set(ids)];
  const result: ReplayRequest = { queued: [], already: [], missing: [] };
  if (wanted.some((id) => byId.has(id))) await mkdir(target, { recursive: true });
  for (const id of wanted) {
    const file = byId.get(id);
    if (file !== undefined) {
      await rename(join(dir, file), join(target, file));
      result.queued.push(id);
    } else if (queuedBefore.has(id)) result.already.push(id);
    else result.missing.push(id);
  }
  return result;
}

export interface RedriverOptions {
  stateDir: string;
  /** The source whose entries this process replays. */
  source: string;
  /** Where they go: the source's `to`. */
  to: string;
  dispatcher: Dispatcher;
  log: Logger;
  /** The back-off after an unavailable stage (the first stage's retry). */
  backoff: RetryModel;
  /** How often the folder is looked at besides its change events (default 1 s). */
  pollMs?: number;
  clock?: Clock;
  random?: Random;
  /** Counts a replayed entry of `records` records stored, or dead-lettered again. */
  onOutcome?: (outcome: "stored" | "dead-letter", records: number) => void;
}

/** Sends the source's replayed dead letters again, one at a time, while the source runs. */
export class Redriver {
  private readonly dir: string;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly pollMs: number;
  private watcher: FSWatcher | null = null;
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Entries that found a stage unavailable: not before this time (the clock's), and how often. */
  private readonly waiting = new Map<string, { at: number; sends: number }>();

  constructor(private readonly options: RedriverOptions) {
    this.dir = replayDir(options.stateDir);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.pollMs = options.pollMs ?? 1000;
  }

  /** Looks at the folder now and then every pollMs, and on every change of it. */
  start(): void {
    this.poke();
    this.schedule();
  }

  /** Looks at the folder now (joining a look in progress). */
  poke(): void {
    if (this.stopped) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.round().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        this.poke();
      }
    });
  }

  /** Resolves once the current look is over (tests, and the drain). */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** Stops looking; an entry being sent finishes its send (its file stays until then). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.watcher?.close();
    this.watcher = null;
    await this.settled();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      this.watchFolder();
      this.poke();
      this.schedule();
    }, this.pollMs);
  }

  /** Watches the folder once it exists (the first replay creates it). */
  private watchFolder(): void {
    if (this.watcher !== null || this.stopped) return;
    try {
      this.watcher = watch(this.dir, () => this.poke());
      this.watcher.on("error", () => {
        this.watcher?.close();
        this.watcher = null;
      });
      this.watcher.unref();
    } catch {
      // Not there yet, or not watchable here: the poll still finds what comes.
    }
  }

  private async round(): Promise<void> {
    this.watchFolder();
    let entries: { file: string; letter: DeadLetter }[];
    try {
      entries = await entriesIn(this.dir);
    } catch (err) {
      this.options.log.warn("cannot read the replay folder", { folder: this.dir, error: err });
      return;
    }
    for (const { file, letter } of entries) {
      if (this.stopped) return;
      if (letter.via[0] !== this.options.source) continue;
      const wait = this.waiting.get(letter.id);
      if (wait !== undefined && wait.at > this.clock.now()) continue;
      await this.replay(file, letter);
    }
  }

  private async replay(file: string, letter: DeadLetter): Promise<void> {
    const texts = letter.texts ?? letter.records.map((r) => JSON.stringify(r) ?? "null");
    const batch: TextBatch = { id: letter.id, via: [this.options.source], texts };
    const path = join(this.dir, file);
    try {
      await this.options.dispatcher.send([this.options.to], batch);
    } catch (error) {
      const failure = (error as { failure?: unknown } | null)?.failure;
      if (failure === "poison") {
        // Still refused: back among the dead letters, with this failure added.
        this.waiting.delete(letter.id);
        // Back where it was (a rename), then this failure added to the ones it had.
        await rename(path, join(deadLetterDir(this.options.stateDir), file));
        await writeDeadLetter(this.options.stateDir, { id: letter.id, via: letter.via, records: letter.records, texts }, error);
        this.options.log.warn("a replayed dead letter failed again: it is back among the dead letters", { batch: letter.id, error });
        this.options.onOutcome?.("dead-letter", texts.length);
        return;
      }
      const sends = (this.waiting.get(letter.id)?.sends ?? 0) + 1;
      this.waiting.set(letter.id, { at: this.clock.now() + retryDelay(this.options.backoff, sends, this.random), sends });
      if (sends === 1) this.options.log.warn("a replayed dead letter found a stage unavailable: it is sent again later", { batch: letter.id, error });
      return;
    }
    this.waiting.delete(letter.id);
    await unlink(path).catch(() => undefined);
    this.options.log.info("replayed a dead letter", { batch: letter.id, records: texts.length });
    this.options.onOutcome?.("stored", texts.length);
  }
}
