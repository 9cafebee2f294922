/**
 * Unit and environment files as data: a unit is sections of `Key=value` entries whose values
 * are UnitValues (made only by escape.ts), so no text from the spec reaches a file unescaped.
 */
import { comment, envAssignment, type UnitValue } from "./escape.js";

export type Entry = readonly [key: string, value: UnitValue] | { comment: string };

export interface Section {
  name: "Unit" | "Service" | "Install";
  entries: readonly Entry[];
}

export function renderUnit(header: readonly string[], sections: readonly Section[]): string {
  const lines = header.map(comment);
  for (const s of sections) {
    lines.push("", `[${s.name}]`);
    for (const e of s.entries) {
      if ("comment" in e) {
        lines.push(comment(e.comment));
        continue;
      }
      const [key, value] = e;
      if (!/^[A-Z][A-Za-z-]*$/.test(key)) throw new Error(`not a unit-file key: ${key}`);
      lines.push(`${key}=${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export function renderEnvFile(header: readonly string[], vars: readonly (readonly [string, string])[]): string {
  const lines = [...header.map(comment), ...vars.map(([k, v]) => envAssignment(k, v))];
  return `${lines.join("\n")}\n`;
}
