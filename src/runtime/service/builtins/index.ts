/**
 * The builtin handlers (`handler: builtin:NAME`): passthrough, log and jsonl-sink. Each is a
 * factory, run once when the instance starts, so that a builtin can check its config and open
 * its files before the first batch (a bad config fails the start, not every batch).
 */
import type { BuiltinHandler as BuiltinName, ServiceModel } from "../../../model/types.js";
import { BUILTIN_HANDLERS } from "../../../model/types.js";
import type { Logger } from "../../core/contracts.js";
import type { StageContext } from "../stage.js";
import { batchKey, JsonlStore, sinkPath } from "./jsonl-sink.js";

export interface BuiltinSetup {
  service: ServiceModel;
  instance: number;
  /** What relative paths in `config` resolve against (RuntimeEnv.dataDir). */
  dataDir: string;
  /** checkpoint.fsync. */
  fsync: boolean;
  log: Logger;
}

export interface BuiltinInstance {
  handle(records: unknown[], ctx: StageContext): Promise<unknown[]> | unknown[];
  /**
   * A sink that only stores its records may take them as JSON texts (one line each), cut from
   * the body without parsing them into values it would only serialise again.
   */
  handleTexts?(texts: readonly string[], ctx: StageContext): Promise<void>;
  close(): Promise<void>;
}

type BuiltinFactory = (setup: BuiltinSetup) => Promise<BuiltinInstance>;

const noClose = (): Promise<void> => Promise.resolve();

/** How many records `builtin:log` shows of each batch unless `config.sample` says otherwise. */
export const LOG_SAMPLE_DEFAULT = 3;

const FACTORIES: Record<BuiltinName, BuiltinFactory> = {
  passthrough: async () => ({ handle: (records) => records, close: noClose }),

  log: async ({ service }) => {
    const sample = service.config.sample ?? LOG_SAMPLE_DEFAULT;
    if (typeof sample !== "number" || !Number.isInteger(sample) || sample < 0) {
      throw new Error(`service ${service.name}: builtin:log's config.sample must be a whole number ≥ 0, not ${JSON.stringify(sample)}`);
    }
    return {
      handle(records, ctx) {
        ctx.log.info("batch", { batch: ctx.batchId, via: ctx.via, records: records.length, sample: records.slice(0, sample) });
        return records;
      },
      close: noClose,
    };
  },

  "jsonl-sink": async ({ service, dataDir, fsync, log }) => {
    const path = sinkPath(service.name, service.config, dataDir);
    const store = await JsonlStore.open(path, { fsync, log: log.child({ sink: path }) });
    log.info("jsonl sink open", { file: path, batches: store.size });
    return {
      async handle(records, ctx) {
        const stored = await store.store(batchKey(ctx.via, ctx.service, ctx.batchId), records);
        if (!stored) ctx.log.info("batch already stored: skipped", { batch: ctx.batchId, via: ctx.via });
        return records;
      },
      async handleTexts(texts, ctx) {
        const stored = await store.storeTexts(batchKey(ctx.via, ctx.service, ctx.batchId), texts);
        if (!stored) ctx.log.info("batch already stored: skipped", { batch: ctx.batchId, via: ctx.via });
      },
      close: () => store.close(),
    };
  },
};

export function isBuiltin(name: string): name is BuiltinName {
  return (BUILTIN_HANDLERS as readonly string[]).includes(name);
}

/** Starts builtin `name` for one instance; throws with a clear message for an unknown name or a bad config. */
export function createBuiltin(name: string, setup: BuiltinSetup): Promise<BuiltinInstance> {
  if (!isBuiltin(name)) {
    return Promise.reject(new Error(`service ${setup.service.name}: unknown builtin handler "builtin:${name}" (builtins: ${BUILTIN_HANDLERS.join(", ")})`));
  }
  return FACTORIES[name](setup);
}
