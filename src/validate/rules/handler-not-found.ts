import type { Rule } from "../rule.js";

export const handlerNotFound: Rule = {
  code: "handler-not-found",
  severity: "error",
  description: "a handler file does not exist",
  check({ model, fileExists, leavesFolder }) {
    if (!fileExists) return [];
    // A path that leads out of the folder is handler-outside's, whether or not it exists.
    return model.services.flatMap((s) =>
      s.handler?.kind === "module" && !s.handler.outside && !leavesFolder?.(s.handler.path) && !fileExists(s.handler.path)
        ? [
            {
              path: `${s.path}/handler`,
              message: `handler "${s.handler.path}" of service "${s.name}" does not exist`,
              hint: "handler paths resolve against the spec file's folder; create the module (default export `async (records, ctx) => records`) or fix the path",
            },
          ]
        : [],
    );
  },
};
