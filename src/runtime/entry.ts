/**
 * The entry of mbc-runtime.mjs as a function: the supervisor without --role, else the one role
 * (src/runtime/main.ts calls it with the real roles; tests with fakes).
 */

import { type EnvVars, loadRuntime, loadSystem, parseArgs, RuntimeConfigError, type RuntimeSetup, resolveEnv, systemPathFor } from "./config/index.js";
import { createLogger } from "./core/log.js";
import type { RoleFactory } from "./core/role.js";
import { runDeadLetterCommand } from "./dead-letter-command.js";

export type { RoleFactory };

import { identityOf, runRole } from "./process/index.js";
import { registryBackend } from "./registry/index.js";
import { runSupervisor } from "./supervisor/index.js";

export interface MainOptions {
  argv: readonly string[];
  vars: EnvVars;
  /** The bundle being run (process.argv[1]): the supervisor starts its children with it. */
  entry: string;
  roles: { source: RoleFactory; service: RoleFactory; registry?: RoleFactory };
}

/** The entry of mbc-runtime.mjs: the supervisor without --role, else the one role. */
export async function runMain(options: MainOptions): Promise<void> {
  if (options.argv[0] === "dead-letter") {
    process.exitCode = await deadLetters(options);
    return;
  }
  let setup: RuntimeSetup;
  try {
    setup = loadRuntime(options.argv, options.vars, options.entry);
  } catch (err) {
    let fields: Record<string, unknown> = { role: "supervisor" };
    try {
      const args = parseArgs(options.argv);
      if (args.role !== null) fields = { role: args.role, name: args.name ?? undefined, instance: args.instance ?? undefined };
    } catch {
      // The arguments themselves are what is wrong.
    }
    createLogger(fields).error(err instanceof Error ? err.message : String(err));
    process.exit(err instanceof RuntimeConfigError ? err.exitCode : 1);
  }
  const { role } = setup;
  try {
    switch (role.kind) {
      case "supervisor":
        return await runSupervisor({ setup, entry: options.entry, vars: options.vars });
      case "registry": {
        const factory = options.roles.registry ?? registryBackend(setup.system.model).role;
        if (factory === null)
          throw new RuntimeConfigError(
            `--role registry: this system's registry backend (${setup.system.model.registry.backend}) runs no registry process of its own; start only the sources and service instances`,
          );
        return await runRole(setup, role, factory);
      }
      case "source":
        return await runRole(setup, role, options.roles.source);
      case "service":
        return await runRole(setup, role, options.roles.service);
    }
  } catch (err) {
    // Both runners handle their own failures; this is the last line of defence. A problem of the
    // setup (the registry backend's settings, a role the backend does not have) is said as it is.
    const log = createLogger(role.kind === "supervisor" ? { role: "supervisor" } : identityOf(role).fields);
    if (err instanceof RuntimeConfigError) {
      log.error(`could not start: ${err.message}`);
      process.exit(err.exitCode);
    }
    log.error("failed", { error: err });
    process.exit(1);
  }
}

/** `dead-letter …`: on the state folder the system's processes use (MBC_STATE_DIR, else checkpoint.dir). */
async function deadLetters(options: MainOptions): Promise<number> {
  const io = { out: (text: string) => process.stdout.write(text), err: (text: string) => process.stderr.write(text) };
  let stateDir: string;
  try {
    const systemPath = systemPathFor(options.entry, options.vars);
    stateDir = resolveEnv(systemPath, loadSystem(systemPath).model, options.vars).stateDir;
  } catch (err) {
    io.err(`${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof RuntimeConfigError ? err.exitCode : 1;
  }
  return runDeadLetterCommand(options.argv.slice(1), stateDir, io);
}
