/** Types of load.mjs, for the TypeScript test that uses it. */
import type { Agent } from "node:http";

/** A JSON array of `n` records with ids `c{client}-{seq}-{k}`. */
export declare function recordsBody(client: number, seq: number, n: number): string;

/** Acknowledged requests of a run. */
export declare class Ledger {
  requests: Map<string, number>;
  records: number;
  add(client: number, seq: number, n: number): void;
}

export interface ClosedLoopResult {
  ledger: Ledger;
  start: number;
  requests: number;
  refused: number;
  errors: number;
  firstError: string | null;
  lastAckAt: number;
}

export declare function closedLoop(options: {
  agent: Agent;
  url: string;
  clients: number;
  perRequest: number;
  durationMs: number;
  maxRequests?: number;
  backoffMs?: number;
  clientBase?: number;
}): Promise<ClosedLoopResult>;

export interface OpenLoopResult {
  ledger: Ledger;
  start: number;
  offeredRecords: number;
  requests: number;
  refused: number;
  skipped: number;
  errors: number;
  firstError: string | null;
  latestMs: number;
}

export declare function openLoop(options: {
  agent: Agent;
  url: string;
  ratePerSec: number;
  perRequest: number;
  durationMs: number;
  maxInFlight?: number;
  clientBase?: number;
}): Promise<OpenLoopResult>;

/** Follows a jsonl-sink's index file; `count()` gives the records stored so far. */
export declare class SinkIndex {
  constructor(path: string);
  count(): Promise<number>;
}

export declare function fileSize(path: string): Promise<number>;

export interface SinkCheck {
  acknowledged: number;
  stored: number;
  missing: number;
  duplicates: number;
  unacknowledged: number;
  unreadable: number;
  lost: boolean;
}

/** Checks the sink file's lines from byte `from` on against the acknowledged requests. */
export declare function verifySink(path: string, from: number, ledger: Ledger): Promise<SinkCheck>;
