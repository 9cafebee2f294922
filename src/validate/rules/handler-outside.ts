import type { Rule } from "../rule.js";

export const handlerOutside: Rule = {
  code: "handler-outside",
  severity: "error",
  description: "a handler path leaves the spec's folder",
  check({ model, leavesFolder }) {
    return model.services.flatMap((s) => {
      const h = s.handler;
      if (h?.kind !== "module") return [];
      // A link counts where it leads: the build copies what the link points at.
      const linked = !h.outside && leavesFolder !== undefined && leavesFolder(h.path);
      if (!h.outside && !linked) return [];
      return [
        {
          path: `${s.path}/handler`,
          message: linked
            ? `handler "${h.path}" of service "${s.name}" leads out of the spec's folder through a symbolic link`
            : `handler "${h.path}" of service "${s.name}" leaves the spec's folder`,
          hint: linked
            ? "handlers are copied into every build, so they must really live in the spec's folder or below it; copy the module there instead of linking to it"
            : "handlers are copied into every build and must live in the spec's folder or below it; move the module there",
        },
      ];
    });
  },
};
