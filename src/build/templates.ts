/** Handlebars for generated files: one instance a render, strict, never HTML-escaped. */
import Handlebars from "handlebars";

export class TemplateError extends Error {}

export function render(name: string, source: string | undefined, data: unknown): string {
  if (source === undefined) throw new TemplateError(`template ${name} is missing`);
  const hb = Handlebars.create();
  hb.registerHelper("json", (value: unknown) => JSON.stringify(value));
  hb.registerHelper("gt", (a: number, b: number) => a > b);
  hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
  try {
    return hb.compile(source, { strict: true, noEscape: true })(data);
  } catch (err) {
    throw new TemplateError(`template ${name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
