/**
 * Loading and running a service's handler.
 *
 * - `builtin:NAME` starts the builtin (builtins/).
 * - A module handler is loaded only from the system folder: system.json's `handlers[service]`
 *   is resolved against that folder and its real path (symlinks followed) must stay inside
 *   the folder's real path, so neither `../` nor a link planted in `handlers/` can make the
 *   runtime import code from elsewhere. Its default export must be a function.
 *
 * Running: the handler gets `ctx = { batchId, service, instance, config, log }` (plus `via`,
 * the services the batch passed, which sinks use to keep fan-out copies apart). A handler
 * that throws, or a stage with `to` whose handler does not return an array, fails the batch
 * with a HandlerError that names the service, the handler and the batch. A sink's return
 * value is ignored (its promise resolving means "stored"); a stage with `to` must return the
 * records to pass on — a forgotten `return` would otherwise drop every record silently.
 */
import { realpath, stat } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import type { Handler, Logger, ServiceModel } from "../core/contracts.js";
import { createBuiltin } from "./builtins/index.js";
import type { StageContext, StageHandler } from "./stage.js";

export type { StageBatch, StageContext, StageHandler, TextStageBatch } from "./stage.js";

export interface HandlerSetup {
  service: ServiceModel;
  instance: number;
  /** Folder of system.json: module handlers are loaded from it and only from it. */
  systemDir: string;
  /** What relative paths in `config` resolve against. */
  dataDir: string;
  /** system.json's `handlers`: service → module path relative to systemDir. */
  handlers: Readonly<Record<string, string>>;
  /** checkpoint.fsync (a sink fsyncs what it stores). */
  fsync: boolean;
  log: Logger;
}

/** A handler failed on a batch (threw, or returned something other than records). */
export class HandlerError extends Error {
  override readonly name = "HandlerError";
}

/** Resolves `path` against `root`; the real path, or an error when it escapes root (also through symlinks) or is not a file. */
export async function resolveInside(root: string, path: string): Promise<string> {
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch (err) {
    throw new Error(`the system folder ${root} cannot be read: ${(err as Error).message}`);
  }
  const candidate = resolve(realRoot, path);
  if (!within(realRoot, candidate)) throw new Error(`handler path ${JSON.stringify(path)} leaves the system folder`);
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT" ? `handler module ${path} does not exist in ${realRoot}` : `handler module ${path} cannot be read: ${(err as Error).message}`,
    );
  }
  if (!within(realRoot, real)) throw new Error(`handler module ${JSON.stringify(path)} is a link to ${real}, outside the system folder`);
  if (!(await stat(real)).isFile()) throw new Error(`handler module ${path} is not a file`);
  return real;
}

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Starts the handler of `setup.service` for one instance. Throws with a clear message when it cannot. */
export async function loadHandler(setup: HandlerSetup): Promise<StageHandler> {
  const { service } = setup;
  if (service.handler === null) throw new Error(`service ${service.name} has no handler (it runs the image ${service.image})`);
  const ref = service.handler;
  const config = structuredClone(service.config);
  const log = setup.log.child({ handler: ref.kind === "builtin" ? `builtin:${ref.name}` : ref.path });
  const isSink = service.to.length === 0;
  if (ref.kind === "builtin") {
    const builtin = await createBuiltin(ref.name, { service, instance: setup.instance, dataDir: setup.dataDir, fsync: setup.fsync, log });
    const handler = stage(
      `builtin:${ref.name}`,
      (records, ctx) => builtin.handle(records, ctx),
      () => builtin.close(),
    );
    const { handleTexts } = builtin;
    if (isSink && handleTexts !== undefined) {
      handler.runTexts = async (batch) => {
        const ctx = context(batch);
        try {
          await handleTexts.call(builtin, batch.texts, ctx);
        } catch (err) {
          throw failed(handler.description, batch.id, err);
        }
      };
    }
    return handler;
  }
  if (ref.outside) throw new Error(`service ${service.name}: handler ${ref.path} leaves the spec's folder`);
  const relPath = setup.handlers[service.name];
  if (relPath === undefined) throw new Error(`service ${service.name}: system.json lists no handler module for it (expected handlers["${service.name}"])`);
  const file = await resolveInside(setup.systemDir, relPath);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new Error(`service ${service.name}: handler module ${relPath} failed to load: ${(err as Error).message}`, { cause: err });
  }
  const fn = mod.default;
  if (typeof fn !== "function") {
    throw new Error(
      `service ${service.name}: handler module ${relPath} must have a function as its default export (export default async (records, ctx) => records), found ${describeValue(fn)}`,
    );
  }
  return stage(relPath, fn as Handler, () => Promise.resolve());

  function context(batch: { id: string; via: readonly string[] }): StageContext {
    return { batchId: batch.id, service: service.name, instance: setup.instance, config, log: log.child({ batch: batch.id }), via: batch.via };
  }

  function failed(description: string, batchId: string, err: unknown): HandlerError {
    const why = err instanceof Error ? err.message : String(err);
    return new HandlerError(`service ${service.name}: handler ${description} failed on batch ${batchId}: ${why}`, { cause: err });
  }

  function stage(description: string, handle: (records: unknown[], ctx: StageContext) => ReturnType<Handler>, close: () => Promise<void>): StageHandler {
    return {
      description,
      close,
      async run(batch) {
        const ctx = context(batch);
        let result: unknown;
        try {
          result = await handle(batch.records, ctx);
        } catch (err) {
          throw failed(description, batch.id, err);
        }
        if (isSink) return [];
        if (!Array.isArray(result)) {
          throw new HandlerError(
            `service ${service.name}: handler ${description} returned ${describeValue(result)} for batch ${batch.id}; a stage with \`to\` must return an array of records`,
          );
        }
        return result;
      },
    };
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "function") return "a function";
  return `a ${typeof value}`;
}
