/**
 * The progress bar of `mbc simulate` on a terminal. It stays hidden for the first second, so
 * that short runs print nothing, then redraws at most ten times a second on one line; `done`
 * erases it. Writing and the clock come in from the caller.
 */

const BAR_WIDTH = 30;
export const PROGRESS_DELAY_MS = 1000;
const REDRAW_MS = 100;

/** One line of the bar, without a line end: "[██████░░░░] 42%  25.2s of 60s simulated". */
export function renderProgress(fraction: number, simulated: string, total: string): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * BAR_WIDTH);
  return `[${"█".repeat(full)}${"░".repeat(BAR_WIDTH - full)}] ${String(Math.floor(f * 100)).padStart(3)}%  ${simulated} of ${total} simulated`;
}

export interface Progress {
  update(fraction: number): void;
  /** Erases the bar if it was drawn. */
  done(): void;
}

export function createProgress(
  write: (text: string) => void,
  label: (fraction: number) => [simulated: string, total: string],
  now: () => number,
  delayMs = PROGRESS_DELAY_MS,
): Progress {
  const start = now();
  let drawn = false;
  let last = Number.NEGATIVE_INFINITY;
  return {
    update(fraction) {
      const t = now();
      if (t - start < delayMs || t - last < REDRAW_MS) return;
      last = t;
      drawn = true;
      // Erase to the end of the line: the new text may be shorter than the last.
      write(`\r${renderProgress(fraction, ...label(fraction))}\u001b[K`);
    },
    done() {
      // Carriage return, then erase to the end of the line.
      if (drawn) write("\r\u001b[K");
      drawn = false;
    },
  };
}

/** Progress that does nothing: not a terminal. */
export const noProgress: Progress = { update() {}, done() {} };
