import { BUILTIN_HANDLERS } from "../../model/types.js";
import { didYouMean } from "../../suggest.js";
import type { Rule } from "../rule.js";

export const unknownBuiltin: Rule = {
  code: "unknown-builtin",
  severity: "error",
  description: "`builtin:NAME` is not a builtin",
  check({ model }) {
    const known: readonly string[] = BUILTIN_HANDLERS;
    return model.services.flatMap((s) =>
      s.handler?.kind === "builtin" && !known.includes(s.handler.name)
        ? [
            {
              path: `${s.path}/handler`,
              message: `"builtin:${s.handler.name}" is not a builtin handler`,
              hint: didYouMean(s.handler.name, known)?.replace(/"([^"]+)"/, '"builtin:$1"') ?? `builtins: ${known.map((b) => `builtin:${b}`).join(", ")}`,
            },
          ]
        : [],
    );
  },
};
