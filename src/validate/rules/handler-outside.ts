import type { Rule } from "../rule.js";

export const handlerOutside: Rule = {
  code: "handler-outside",
  severity: "error",
  description: "a handler path leaves the spec's folder",
  check({ model }) {
    return model.services.flatMap((s) =>
      s.handler?.kind === "module" && s.handler.outside
        ? [
            {
              path: `${s.path}/handler`,
              message: `handler "${s.handler.path}" of service "${s.name}" leaves the spec's folder`,
              hint: "handlers are copied into every build and must live in the spec's folder or below it; move the module there",
            },
          ]
        : [],
    );
  },
};
