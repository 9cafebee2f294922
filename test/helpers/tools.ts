/**
 * Tests that need an outside tool skip with a printed reason on a user's machine; with
 * MBC_REQUIRE_TOOLS=1 (set by CI) a missing tool fails instead.
 */
export interface Tool {
  name: string;
  available: boolean;
  /** Why it is missing (empty when available). */
  reason: string;
  /** Skip the suite: missing, and not required. */
  skip: boolean;
}

export function tool(name: string, probe: () => string | null): Tool {
  let reason: string | null;
  try {
    reason = probe();
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  const available = reason === null;
  const required = process.env.MBC_REQUIRE_TOOLS === "1";
  if (!available && !required) process.stderr.write(`skipping ${name} tests: ${reason} (set MBC_REQUIRE_TOOLS=1 to make this a failure)\n`);
  return { name, available, reason: reason ?? "", skip: !available && !required };
}

/** Call in beforeAll of a suite that did not skip: fails when the tool is required but missing. */
export function assertTool(t: Tool): void {
  if (!t.available) throw new Error(`${t.name} is required (MBC_REQUIRE_TOOLS=1) but missing: ${t.reason}`);
}
