/**
 * `node mbc-runtime.mjs dead-letter list [--json]` and `… dead-letter replay ID… | --all`: the
 * dead letters of a state folder (MBC_STATE_DIR, else the system's checkpoint.dir), and moving
 * them to be replayed by their sources (source/redrive.ts). `mbc dead-letter` runs the same with
 * the state folder of `mbc run`.
 */
import { parseArgs } from "node:util";
import { escapeControls } from "../format/terminal.js";
import { listDeadLetters, queueReplay } from "./source/redrive.js";

export const DEAD_LETTER_USAGE = "usage: dead-letter list [--json] | dead-letter replay ID… | dead-letter replay --all";

export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

/** Runs a dead-letter command on `stateDir`; the exit status: 0 done, 2 usage or no such entry. */
export async function runDeadLetterCommand(argv: readonly string[], stateDir: string, io: CommandOutput): Promise<number> {
  const [verb, ...rest] = argv;
  let parsed: ReturnType<typeof parseArgs<{ options: { json: { type: "boolean" }; all: { type: "boolean" } }; allowPositionals: true; args: string[] }>>;
  try {
    parsed = parseArgs({ args: rest, options: { json: { type: "boolean" }, all: { type: "boolean" } }, allowPositionals: true, strict: true });
  } catch (err) {
    io.err(`${(err as Error).message}\n${DEAD_LETTER_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (verb === "list") {
    if (positionals.length > 0 || values.all) {
      io.err(`dead-letter list takes no ids\n${DEAD_LETTER_USAGE}\n`);
      return 2;
    }
    const entries = await listDeadLetters(stateDir);
    if (values.json) {
      io.out(`${JSON.stringify({ stateDir, deadLetters: entries }, null, 2)}\n`);
      return 0;
    }
    if (entries.length === 0) {
      io.out(`no dead letters in ${stateDir}\n`);
      return 0;
    }
    // What a dead letter holds came from outside (ids, errors): shown with control characters escaped.
    const rows = [
      ["ID", "SOURCE", "RECORDS", "SERVICE", "FAILED AT", "ERROR"],
      ...entries.map((e) => [e.id, e.source, String(e.records), e.service ?? "-", e.at ?? "-", oneLine(e.error)].map(escapeControls)),
    ];
    const widths = rows[0]?.map((_, k) => Math.max(...rows.map((r) => (r[k] ?? "").length))) ?? [];
    for (const r of rows) io.out(`${r.map((cell, k) => (k === r.length - 1 ? cell : cell.padEnd(widths[k] ?? 0))).join("  ")}\n`);
    io.out(`${entries.length} dead letter${entries.length === 1 ? "" : "s"}; replay one with: dead-letter replay ID (or --all)\n`);
    return 0;
  }
  if (verb === "replay") {
    if (values.all === true && positionals.length > 0) {
      io.err(`dead-letter replay takes ids or --all, not both\n${DEAD_LETTER_USAGE}\n`);
      return 2;
    }
    if (values.all !== true && positionals.length === 0) {
      io.err(`dead-letter replay needs the ids to replay, or --all\n${DEAD_LETTER_USAGE}\n`);
      return 2;
    }
    const result = await queueReplay(stateDir, values.all === true ? "all" : positionals);
    for (const id of result.queued) io.out(`queued ${id} for replay: its source sends it again\n`);
    for (const id of result.already) io.out(`${id} is queued for replay already\n`);
    for (const id of result.missing) io.err(`no dead letter ${escapeControls(JSON.stringify(id))} in ${stateDir} (see dead-letter list)\n`);
    if (values.all === true && result.queued.length === 0) io.out(`no dead letters in ${stateDir}\n`);
    return result.missing.length > 0 ? 2 : 0;
  }
  io.err(`${verb === undefined ? "dead-letter needs list or replay" : `unknown dead-letter command ${JSON.stringify(verb)}`}\n${DEAD_LETTER_USAGE}\n`);
  return 2;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}
