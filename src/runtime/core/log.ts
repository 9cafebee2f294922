/**
 * Structured logs: one JSON object a line on stderr, e.g.
 * `{"time":"…","level":"info","role":"service","name":"enrich","instance":0,"msg":"started","port":9100}`.
 *
 * The fields of the process (role, name, instance) come first, then `msg`, then the call's own
 * fields. An Error in the fields is written as `{name, message, stack, code}` (JSON.stringify
 * would write `{}`); a value JSON cannot hold (a cycle, a BigInt) never makes logging throw.
 * stderr is synchronous for files and pipes on POSIX, so lines are neither lost on exit nor
 * interleaved between processes that share a pipe (each line is one write, under PIPE_BUF for
 * ordinary lines).
 */
import type { Logger } from "./contracts.js";

export type LogLevel = "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { info: 0, warn: 1, error: 2 };

export interface LoggerOptions {
  /** Where a finished line goes (with its "\n"); default process.stderr. */
  write?: (line: string) => void;
  /** Lines below this level are dropped; default MBC_LOG_LEVEL, else info. */
  level?: LogLevel;
  /** The clock; default Date.now. */
  now?: () => number;
}

/** `MBC_LOG_LEVEL` when it names a level, else info. */
export function logLevelFrom(value: string | undefined): LogLevel {
  return value === "warn" || value === "error" || value === "info" ? value : "info";
}

/** The JSON form of an Error, including its cause chain (bounded, as causes can loop). */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined) out.code = code;
  if (err.stack) out.stack = err.stack;
  if (err.cause !== undefined && depth < 3) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return serializeError(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** One log line (with "\n"): never throws, whatever the fields hold. */
export function formatLine(time: number, level: LogLevel, base: Record<string, unknown>, msg: string, fields?: Record<string, unknown>): string {
  const record = { time: new Date(time).toISOString(), level, ...base, msg, ...fields };
  try {
    return `${JSON.stringify(record, replacer)}\n`;
  } catch (err) {
    // A cycle in the fields: keep the message and say why the fields are missing.
    return `${JSON.stringify({ time: record.time, level, ...base, msg, logError: `fields not serialisable: ${(err as Error).message}` })}\n`;
  }
}

/** A Logger whose lines carry `base` (role, name, instance …) before the message. */
export function createLogger(base: Record<string, unknown>, options: LoggerOptions = {}): Logger {
  const write =
    options.write ??
    ((line: string) => {
      try {
        process.stderr.write(line);
      } catch {
        // stderr closed (EPIPE): there is nowhere left to report to.
      }
    });
  const min = RANK[options.level ?? logLevelFrom(process.env.MBC_LOG_LEVEL)];
  const now = options.now ?? Date.now;
  const make = (fields: Record<string, unknown>): Logger => {
    const emit = (level: LogLevel, msg: string, extra?: Record<string, unknown>) => {
      if (RANK[level] >= min) write(formatLine(now(), level, fields, msg, extra));
    };
    return {
      info: (msg, extra) => emit("info", msg, extra),
      warn: (msg, extra) => emit("warn", msg, extra),
      error: (msg, extra) => emit("error", msg, extra),
      child: (more) => make({ ...fields, ...more }),
    };
  };
  return make(base);
}

/** How many lines of one message a window allows before it counts them instead (journald's idea). */
export const REPEAT_BURST = 20;
export const REPEAT_INTERVAL_MS = 10_000;

export interface RepeatLimit {
  /** The clock (milliseconds); default Date.now. */
  now?: () => number;
  /** Lines with one message written per window; default REPEAT_BURST. */
  burst?: number;
  /** The window; default REPEAT_INTERVAL_MS. */
  intervalMs?: number;
}

/**
 * A logger for lines written once per batch or per attempt, which an outage repeats for as long
 * as it lasts (a sink on a full disk fails every attempt): past `burst` warnings or errors with
 * one message in a window, further ones are counted, not written, and the next one written after
 * the window carries `suppressed`, how many were left out — as journald rate-limits a unit. Info
 * lines pass. Children share the count: a repeat is a repeat whichever batch it names.
 */
export function limitRepeats(log: Logger, limit: RepeatLimit = {}): Logger {
  const now = limit.now ?? Date.now;
  const burst = limit.burst ?? REPEAT_BURST;
  const intervalMs = limit.intervalMs ?? REPEAT_INTERVAL_MS;
  const windows = new Map<string, { start: number; written: number; suppressed: number }>();
  /** Whether to write the line, and how many of its kind the last window left out. */
  const admit = (msg: string): number | null => {
    const time = now();
    const w = windows.get(msg);
    if (w === undefined || time - w.start >= intervalMs) {
      // Messages are a few dozen constants; forget them all if something floods the map.
      if (w === undefined && windows.size >= 1000) windows.clear();
      windows.set(msg, { start: time, written: 1, suppressed: 0 });
      return w?.suppressed ?? 0;
    }
    if (w.written < burst) {
      w.written++;
      return 0;
    }
    w.suppressed++;
    return null;
  };
  const wrap = (inner: Logger): Logger => {
    const limited = (level: "warn" | "error") => (msg: string, fields?: Record<string, unknown>) => {
      const suppressed = admit(msg);
      if (suppressed === null) return;
      inner[level](msg, suppressed > 0 ? { ...fields, suppressed } : fields);
    };
    return { info: (msg, fields) => inner.info(msg, fields), warn: limited("warn"), error: limited("error"), child: (more) => wrap(inner.child(more)) };
  };
  return wrap(log);
}

/** A Logger that writes nothing (tests, and code that takes an optional logger). */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/**
 * Logs an uncaught exception or unhandled rejection and exits 1: the process's state is
 * unknown (its supervisor, Compose or systemd restarts it). A closed stdout or stderr (whoever
 * held the pipes died) must not crash the process mid-drain: nobody is left to read them.
 */
export function installCrashHandlers(log: Logger): void {
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  process.on("uncaughtException", (err) => {
    log.error("uncaught exception: exiting", { error: err });
    process.exit(1);
  });
  process.on("unhandledRejection", (reason) => {
    log.error("unhandled rejection: exiting", { error: reason });
    process.exit(1);
  });
}
