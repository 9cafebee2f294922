/**
 * Node built-ins that only some commands need, loaded when first used: `mbc validate` is mostly
 * start-up, and loading crypto and child_process up front costs it several milliseconds.
 *
 * The same goes for process.stdout and process.stderr: Node creates them on first use, and
 * creating one loads the net, stream and tty modules. `isTerminal` and `writeStdout` do without
 * them when stdout is a pipe or a file.
 */
import { fstatSync, writeSync } from "node:fs";
import { createRequire } from "node:module";

const load = createRequire(import.meta.url);

export const crypto = (): typeof import("node:crypto") => load("node:crypto");
export const childProcess = (): typeof import("node:child_process") => load("node:child_process");

/** Whether stdout (1) or stderr (2) is a terminal; only a character device can be one. */
export function isTerminal(fd: 1 | 2): boolean {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  return Boolean((fd === 1 ? process.stdout : process.stderr).isTTY);
}

let viaStream = false;
/** Set once stdout is gone (the reader closed the pipe, as `| head` does): the rest is dropped. */
let closed = false;

/**
 * Like every Unix filter, mbc stops writing when its reader goes away and exits with the
 * command's status, without a stack trace; any other write error also ends the output, with a
 * message and exit code 2.
 */
function stdoutFailed(err: unknown): void {
  if (closed) return;
  closed = true;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === "EPIPE") return;
  process.exitCode = 2;
  try {
    writeSync(2, `mbc: cannot write to stdout: ${code ?? String(err)}\n`);
  } catch {}
}

/**
 * Writes to stdout with write(2) as long as that goes through; what a write cannot take (a full
 * non-blocking pipe) goes to process.stdout, which handles it as it always does, and so does
 * everything after it, to keep the order.
 */
export function writeStdout(text: string): void {
  if (closed) return;
  if (!viaStream) {
    const bytes = Buffer.from(text);
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(1, bytes, done);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") {
        stdoutFailed(err);
        return;
      }
      viaStream = true;
      process.stdout.on("error", stdoutFailed);
      process.stdout.write(bytes.subarray(done));
      return;
    }
  }
  process.stdout.write(text);
}
