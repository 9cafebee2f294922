/**
 * A problem of the process's setup that stops it before it starts (exit status 2): its
 * configuration, or a state folder that another process owns (core/ownership.ts).
 */
export class RuntimeConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "RuntimeConfigError";
  }
}
