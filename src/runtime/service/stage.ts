/** What a service instance runs a batch through: a handler (a module's or a builtin's) and its context. */
import type { HandlerContext } from "../core/contracts.js";

/** What every handler receives: the contract's context and the batch's path. */
export interface StageContext extends HandlerContext {
  /** Services (source first) the batch passed before this one. */
  via: readonly string[];
}

/** A batch as a stage runs it. */
export interface StageBatch {
  id: string;
  via: readonly string[];
  records: unknown[];
}

/** A batch whose records are JSON texts (one line each), for a stage that takes them so. */
export interface TextStageBatch {
  id: string;
  via: readonly string[];
  texts: readonly string[];
}

export interface StageHandler {
  /** `builtin:NAME` or the module's path relative to the system folder. */
  readonly description: string;
  /** Runs the handler; resolves with the records to pass on ([] for a sink). */
  run(batch: StageBatch): Promise<unknown[]>;
  /**
   * Present on a sink whose handler stores records as they are (builtin:jsonl-sink): runs it on
   * the records' JSON texts, so that the service need not parse them.
   */
  runTexts?(batch: TextStageBatch): Promise<void>;
  /** Releases what the handler holds (a sink's files). */
  close(): Promise<void>;
}
