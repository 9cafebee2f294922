/**
 * Each target's constraints as `target-constraint` diagnostics at the field: errors for the
 * targets the spec or `targets` names, warnings for the others; and the generators refuse
 * exactly what their checks report, so validate and build cannot disagree.
 */
import { describe, expect, it } from "vitest";
import { imageProblem } from "../../generators/compose/check.js";
import { bindProblem } from "../../generators/node/check.js";
import { installDirProblem, nodeProblem, writablePathProblem } from "../../generators/systemd/check.js";
import { targetChecks } from "../../src/build/checks.js";
import { generators } from "../../src/build/generators.js";
import { TARGET_IDS } from "../../src/build/targets.js";
import type { Diagnostic } from "../../src/diagnostic.js";
import { type ValidateOptions, validateText } from "../../src/validate/index.js";

const spec = (top: string, service = "") => `mbc: 1
name: shop
${top}sources:
  orders:
    type: http
    port: 8080
    to: store
services:
  store:
    handler: builtin:log
${service}`;

const constraints = (text: string, options: ValidateOptions = {}): [string, string, number, number][] =>
  validateText("microbatch.yaml", text, options)
    .diagnostics.filter((d: Diagnostic) => d.code === "target-constraint")
    .map((d) => [d.severity, d.path, d.line, d.column]);

describe("target-constraint", () => {
  it("registry backend kubernetes: each host target (node, compose, systemd) cannot carry it, at backend", () => {
    const text = spec("registry:\n  backend: kubernetes\n");
    expect(constraints(text)).toEqual([
      ["warning", "/registry/backend", 4, 12],
      ["warning", "/registry/backend", 4, 12],
      ["warning", "/registry/backend", 4, 12],
    ]);
    expect(constraints(text, { targets: ["systemd"] })[0]).toEqual(["error", "/registry/backend", 4, 12]);
    const messages = validateText("microbatch.yaml", text, { targets: ["compose"] }).diagnostics.filter((d) => d.severity === "error");
    expect(messages.map((d) => d.message)).toEqual([expect.stringContaining('the compose target: registry backend "kubernetes"')]);
    // etcd and embedded are carried by every host target.
    expect(constraints(spec("registry:\n  backend: etcd\n  endpoints: [http://127.0.0.1:2379]\n"))).toEqual([]);
  });

  it("checkpoint.dir outside the systemd data folder: a warning when no target is named", () => {
    expect(constraints(spec("checkpoint: { dir: /abs/state }\n"))).toEqual([["warning", "/checkpoint/dir", 3, 20]]);
  });

  it("an error for a target the spec names under targets:, a warning for the others", () => {
    const text = spec("checkpoint: { dir: /abs/state }\ntargets:\n  compose: { image: 'Node:20 alpine' }\n");
    expect(constraints(text)).toEqual([
      ["warning", "/checkpoint/dir", 3, 20],
      ["error", "/targets/compose/image", 5, 21],
    ]);
  });

  it("--target wins over targets:", () => {
    const text = spec("checkpoint: { dir: /abs/state }\ntargets:\n  compose: { image: 'Node:20 alpine' }\n");
    expect(constraints(text, { targets: ["systemd"] })).toEqual([
      ["error", "/checkpoint/dir", 3, 20],
      ["warning", "/targets/compose/image", 5, 21],
    ]);
  });

  it('installDir "/", with a trailing space, and a tab in node: errors at each field', () => {
    const text = spec('targets:\n  systemd:\n    installDir: "/"\n    node: "/usr/bin/no\\tde"\n');
    expect(constraints(text)).toEqual([
      ["error", "/targets/systemd/installDir", 5, 17],
      ["error", "/targets/systemd/node", 6, 11],
    ]);
    expect(constraints(spec('targets:\n  systemd:\n    installDir: "/opt/x "\n'))).toEqual([["error", "/targets/systemd/installDir", 5, 17]]);
  });

  it("a sink file or a state folder that leaves the data folder, a file source the sandbox hides", () => {
    const text = `mbc: 1
name: shop
targets: { systemd: {} }
sources:
  feed: { type: file, path: /tmp/in.jsonl, to: store }
services:
  store:
    handler: builtin:jsonl-sink
    config: { path: ../../out.jsonl }
`;
    expect(constraints(text)).toEqual([
      ["error", "/sources/feed/path", 5, 29],
      // The kubernetes target refuses a host path too (a warning: the spec does not name it).
      ["warning", "/sources/feed/path", 5, 29],
      ["error", "/services/store/config/path", 9, 21],
    ]);
  });

  it("a service's image that is no image reference, and a bind address that is no address", () => {
    expect(constraints(spec("", "  other: { image: 'Registry/X Y', to: store }\n"), { targets: ["compose"] })).toEqual([
      ["error", "/services/other/image", 11, 19],
      ["warning", "/services/other/image", 11, 19],
    ]);
    expect(constraints(spec("targets: { node: { bind: 'local host' } }\n"))).toEqual([["error", "/targets/node/bind", 3, 26]]);
  });

  it("a value set by an environment overlay is reported at the overlay's line", () => {
    const text = spec("environments:\n  prod:\n    checkpoint: { dir: ../up }\n");
    expect(constraints(text, { env: "prod", targets: ["systemd"] })).toEqual([["error", "/environments/prod/checkpoint/dir", 5, 24]]);
  });

  it("a build checks the targets it builds only: the others are not checked at all", () => {
    const text = spec("checkpoint: { dir: /abs/state }\ntargets:\n  compose: { image: 'Node:20 alpine' }\n");
    expect(constraints(text, { targets: ["node"], otherTargets: "ignore" })).toEqual([]);
    expect(constraints(text, { targets: ["systemd"], otherTargets: "ignore" })).toEqual([["error", "/checkpoint/dir", 3, 20]]);
  });

  it("kubernetes: a default namespace and names that are no DNS labels, at the name's key", () => {
    const text = `mbc: 1
name: shop-
sources:
  feed-: { type: http, port: 8080, to: store- }
services:
  store-:
    handler: builtin:log
`;
    expect(constraints(text, { targets: ["kubernetes"], otherTargets: "ignore" })).toEqual([
      ["error", "/name", 2, 7],
      ["error", "/sources/feed-", 4, 3],
      ["error", "/services/store-", 6, 3],
    ]);
    // A namespace that is set is the schema's to check; the default one then goes unused.
    expect(
      constraints(text.replace("sources:", "targets: { kubernetes: { namespace: shop } }\nsources:"), { targets: ["kubernetes"], otherTargets: "ignore" }),
    ).toEqual([
      ["error", "/sources/feed-", 5, 3],
      ["error", "/services/store-", 7, 3],
    ]);
  });

  it("kubernetes: a file source's host path, an image, and ReadWriteOncePod shared by several pods", () => {
    const text = `mbc: 1
name: shop
targets: { kubernetes: { image: 'Node:20', sinkAccessMode: ReadWriteOncePod } }
sources:
  feed: { type: file, path: /srv/in.jsonl, to: store }
  rel: { type: file, path: ./in.jsonl, to: store }
services:
  store:
    handler: builtin:jsonl-sink
    config: { path: ./out.jsonl }
    instances: 2
`;
    expect(constraints(text, { otherTargets: "ignore" })).toEqual([
      ["error", "/targets/kubernetes/image", 3, 33],
      ["error", "/targets/kubernetes/sinkAccessMode", 3, 60],
      ["error", "/sources/feed/path", 5, 29],
    ]);
    // One pod may hold a ReadWriteOncePod claim.
    const one = text
      .replace("  rel: { type: file, path: ./in.jsonl, to: store }\n", "")
      .replace("path: /srv/in.jsonl", "path: ./in.jsonl")
      .replace("instances: 2", "instances: 1");
    expect(
      constraints(one.replace("  feed: { type: file, path: ./in.jsonl, to: store }", "  feed: { type: http, port: 8080, to: store }"), {
        otherTargets: "ignore",
      }),
    ).toEqual([["error", "/targets/kubernetes/image", 3, 33]]);
  });

  it("registry.backend kubernetes is for the kubernetes target only", () => {
    const text = spec("registry: { backend: kubernetes }\n");
    expect(constraints(text, { targets: ["kubernetes"] })).toEqual([
      ["warning", "/registry/backend", 3, 22],
      ["warning", "/registry/backend", 3, 22],
      ["warning", "/registry/backend", 3, 22],
    ]);
    expect(constraints(text, { targets: ["compose"], otherTargets: "ignore" })).toEqual([["error", "/registry/backend", 3, 22]]);
  });

  it("kubernetes: a system.json past the ConfigMap's 1 MiB is refused by validate, at services, unless the image holds the runtime", () => {
    // 2,500 services of long names and configs: a valid spec whose system.json is several MiB.
    const lines = ["mbc: 1", "name: big", "sources:", "  s: { type: generator, rate: 1, to: a0 }", "services:"];
    for (let i = 0; i < 2500; i++)
      lines.push(`  a${i}: { handler: builtin:passthrough, env: { NOTE: "${"x".repeat(300)}" }${i + 1 < 2500 ? `, to: a${i + 1}` : ""} }`);
    const text = `${lines.join("\n")}\n`;
    expect(constraints(text, { targets: ["kubernetes"], otherTargets: "ignore" })).toEqual([["error", "/services", 5, 1]]);
    expect(
      constraints(text.replace("sources:", "targets: { kubernetes: { imageHasRuntime: true } }\nsources:"), {
        targets: ["kubernetes"],
        otherTargets: "ignore",
      }),
    ).toEqual([]);
  }, 60_000);

  it("the default values of every target pass", () => {
    expect(constraints(spec(""), { targets: [...TARGET_IDS] })).toEqual([]);
  });
});

describe("the checks' predicates", () => {
  it("image references", () => {
    for (const ok of ["node:20-alpine", "registry.example.com/team/enrich:1.4", "localhost:5000/a/b", `ghcr.io/x/y@sha256:${"a".repeat(64)}`, "a__b-c.d"])
      expect(imageProblem(ok), ok).toBeNull();
    for (const bad of ["", "Node:20", "node:20 alpine", "a//b", "x:", "-x", `${"a".repeat(256)}`, "x:tag\nkey: v"])
      expect(imageProblem(bad), bad).not.toBeNull();
  });

  it("bind addresses", () => {
    for (const ok of ["127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1", "localhost", "host.example.com"])
      expect(bindProblem(ok), ok).toBeNull();
    for (const bad of ["", "256.1.1.1", "local host", "1:2:3:4:5:6:7:8:9", "::1::", "-x", "a..b"]) expect(bindProblem(bad), bad).not.toBeNull();
  });

  it("systemd paths", () => {
    expect(installDirProblem("/opt/mbc/shop")).toBeNull();
    for (const bad of ["/", "relative", "/opt/../etc", "/opt/x ", "/opt/a\nb", "/opt//x"]) expect(installDirProblem(bad), bad).not.toBeNull();
    expect(nodeProblem("/usr/bin/node")).toBeNull();
    for (const bad of ["node", "/opt/it's/node", "/opt/\tx"]) expect(nodeProblem(bad), bad).not.toBeNull();
    expect(writablePathProblem("state/x")).toBeNull();
    expect(writablePathProblem(".")).toBeNull();
    for (const bad of ["/var/lib/x", "..", "../x", "a/../../x"]) expect(writablePathProblem(bad), bad).not.toBeNull();
  });
});

describe("validate and build share one check per target", () => {
  it("each generator's check is the one validate runs", () => {
    for (const id of TARGET_IDS) expect(generators[id].check).toBe(targetChecks[id]);
  });
});
