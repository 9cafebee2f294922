/**
 * Delivery classes (the contract's "Delivery classes"): why a batch could not go through a
 * stage, as one stage tells its caller in the `mbc-failure` header of its answer.
 *
 * - `unavailable`: the stage or something it needs is not there now (no live instance, a refused
 *   or reset connection, a 503, a system error such as ENOSPC or ECONNREFUSED, a retry refused
 *   by the budget, an unmarked 5xx). It is back-pressure: the batch goes back to its source,
 *   stays uncommitted and is sent again later.
 * - `poison`: this batch fails here with an error that is not a system error, or times out,
 *   while other batches get through. The source splits it until the records that fail are
 *   alone, and dead-letters only those.
 * - `timeout`: the stage ran out of the time it was given (its deadline) before it could answer.
 *
 * A batch carries its deadline as the time left, in the `mbc-time-left` header (milliseconds),
 * as gRPC sends `grpc-timeout`: clocks need not agree.
 */

export const FAILURE_CLASSES = ["unavailable", "poison", "timeout"] as const;
export type FailureClass = (typeof FAILURE_CLASSES)[number];

/** The answer header that carries a failure's class between stages. */
export const FAILURE_HEADER = "mbc-failure";
/** The request header that carries the time a stage has left for a batch, in whole milliseconds. */
export const TIME_LEFT_HEADER = "mbc-time-left";

/** A failure class from a header value, or null when absent or unknown. */
export function parseFailureClass(value: string | string[] | undefined): FailureClass | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return null;
  const text = v.trim().toLowerCase();
  return (FAILURE_CLASSES as readonly string[]).includes(text) ? (text as FailureClass) : null;
}

/** The time left from a header value (ms, ≥ 0), or null when absent or not a number. */
export function parseTimeLeft(value: string | string[] | undefined): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\s*\d{1,10}\s*$/.test(v)) return null;
  return Number(v);
}

/** A system error code as Node and libuv name them (ENOSPC, EIO, ECONNREFUSED, EAI_AGAIN, …). */
const SYSTEM_CODE = /^E[A-Z0-9_]{2,}$/;

/**
 * The class of an error a handler (or a builtin) threw: `unavailable` when it, or an error it
 * was caused by, carries a system error code, or is marked `retryable: true` by the handler;
 * `poison` otherwise (the handler refused these records).
 */
export function classifyError(error: unknown): "unavailable" | "poison" {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== null && typeof current === "object"; depth++) {
    const e = current as { code?: unknown; retryable?: unknown; cause?: unknown; errors?: unknown };
    if (e.retryable === true) return "unavailable";
    if (typeof e.code === "string" && SYSTEM_CODE.test(e.code)) return "unavailable";
    // An AggregateError (Promise.any, Happy Eyeballs' connect attempts) is a system error when one of its errors is.
    if (Array.isArray(e.errors) && e.errors.some((inner) => classifyError(inner) === "unavailable")) return "unavailable";
    current = e.cause;
  }
  return "poison";
}
