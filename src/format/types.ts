import type { Diagnostic } from "../diagnostic.js";

export interface FormatContext {
  /** Source lines for code frames, by file. */
  lineText(file: string, line: number): string;
  color: boolean;
  /** Files that were checked, including those without problems. */
  files: string[];
  version: string;
}

export type Formatter = (diagnostics: Diagnostic[], ctx: FormatContext) => string;
