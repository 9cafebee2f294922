/**
 * The systemd target (goldens are in test/build.test.ts):
 *
 * - systemd itself accepts every unit: `systemd-analyze verify` prints nothing for every unit
 *   and an instance of each template (verify exits 0 on bad values and unknown keys, only
 *   warning, so any output fails), and `systemd-analyze security --offline` scores every service
 *   unit at an exposure ≤ 5.0;
 * - hostile text (`%`, `$`, quotes, backslashes, newlines, `..`) in every place a user writes it
 *   cannot add a key, a directive or a path: the files are parsed back, by our own reading of
 *   systemd's rules and by systemd's own parser (`systemd --test` dumps the units it loaded),
 *   and every key and value is what the spec said; what no file can hold is refused;
 * - install.sh and uninstall.sh pass `sh -n` and shellcheck, and run against an image root
 *   (`--root DIR`): user, runtime, data folder, units, enablement; both are idempotent, a
 *   re-install removes units a build no longer has, and uninstall keeps the data unless --purge;
 * - the layout works: each process started with its unit's command line and environment files
 *   (there is no systemd to start them here) runs the system, and a posted record reaches the
 *   sink below data/.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  comment,
  envAssignment,
  execLine,
  INSTANCE,
  shellWord,
  UnsafeValueError,
  unitList,
  unitPath,
  unitText,
  unitTextValue,
} from "../../generators/systemd/escape.js";
import { systemdGenerator, systemdLayout } from "../../generators/systemd/index.js";
import { headerText } from "../../src/build/header.js";
import { buildArtefacts } from "../../src/build/index.js";
import type { Artefact } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { cleanupAll } from "../helpers/runtime.js";
import {
  argv,
  build,
  exampleText,
  hostileDescription,
  hostileEnv,
  hostileInstallDir,
  hostileNode,
  hostileSink,
  hostileSpecName,
  hostileState,
  hostileText,
  inputsFor,
  keys,
  lowPortsText,
  NASTY,
  parseEnvFile,
  parseUnit,
  specifiers,
  temp,
  values,
  words,
} from "../helpers/systemd.js";

afterAll(cleanupAll);

// ---------------------------------------------------------------------------------------------

describe("the units", () => {
  const built = build(exampleText);
  const L = systemdLayout(built.model);
  const unit = (name: string) => parseUnit(built.file(`units/${name}`));

  it("one template a service, a unit for the registry and each source, and a target that wants every instance", () => {
    expect(built.artefacts.map((a) => a.path).filter((p) => p.startsWith("units/"))).toEqual(
      [
        "units/mbc-design-example-data-processing@.service",
        "units/mbc-design-example-registry.service",
        "units/mbc-design-example-result-storage@.service",
        "units/mbc-design-example-source-input.service",
        "units/mbc-design-example.target",
      ].sort(),
    );
    const target = unit(L.units.target);
    expect(values(target, "Unit", "Wants")[0]?.split(" ")).toEqual([
      "mbc-design-example-registry.service",
      "mbc-design-example-source-input.service",
      "mbc-design-example-data-processing@0.service",
      "mbc-design-example-data-processing@1.service",
      "mbc-design-example-result-storage@0.service",
    ]);
    expect(values(target, "Install", "WantedBy")).toEqual(["multi-user.target"]);
  });

  it("stages start after the registry and after their downstream instances, and belong to the target", () => {
    const dp = unit(L.units.service("data-processing"));
    expect(values(dp, "Unit", "Wants")).toEqual(["mbc-design-example-registry.service"]);
    expect(values(dp, "Unit", "After")).toEqual(["mbc-design-example-registry.service mbc-design-example-result-storage@0.service"]);
    expect(values(dp, "Unit", "PartOf")).toEqual(["mbc-design-example.target"]);
    const src = unit(L.units.source("input"));
    expect(values(src, "Unit", "After")).toEqual([
      "mbc-design-example-registry.service mbc-design-example-data-processing@0.service mbc-design-example-data-processing@1.service",
    ]);
  });

  it("every unit names the spec path it came from", () => {
    expect(values(unit(L.units.registry), "Unit", "X-Mbc-Spec-Path")).toEqual(["/registry"]);
    expect(values(unit(L.units.source("input")), "Unit", "X-Mbc-Spec-Path")).toEqual(["/sources/input"]);
    expect(values(unit(L.units.service("result-storage")), "Unit", "X-Mbc-Spec-Path")).toEqual(["/services/result-storage"]);
    expect(values(unit(L.units.target), "Unit", "X-Mbc-Spec-Path")).toEqual([""]);
  });

  it("every file that allows comments starts with the header", () => {
    for (const a of built.artefacts) {
      const text = typeof a.content === "string" ? a.content : "";
      const header = "generated by mbc 0.0.0-test from microbatch.yaml";
      if (a.path.startsWith("units/") || a.path.startsWith("env/") || a.path.startsWith("sysusers/"))
        expect(text.split("\n")[0], a.path).toContain(`# ${header}`);
      if (a.path.endsWith(".sh")) expect(text.split("\n").slice(0, 2), a.path).toEqual(["#!/bin/sh", expect.stringContaining(`# ${header}`)]);
      if (a.path === "README.md" || a.path === "FIDELITY.md") expect(text.split("\n")[0], a.path).toContain(`<!-- ${header}`);
    }
  });

  it("retry and resources: Restart=on-failure, RestartSec, the start limit, CPUQuota, MemoryMax and the heap", () => {
    const shop = build(lowPortsText);
    const SL = systemdLayout(shop.model);
    const enrich = parseUnit(shop.file(`units/${SL.units.service("enrich")}`));
    expect(values(enrich, "Service", "Restart")).toEqual(["on-failure"]);
    expect(values(enrich, "Service", "RestartSec")).toEqual(["250ms"]);
    // (maxRetries + 1) starts within (maxRetries + 1) × (interval + maxInterval) = 5 × 2.25 s.
    expect(values(enrich, "Unit", "StartLimitBurst")).toEqual(["5"]);
    expect(values(enrich, "Unit", "StartLimitIntervalSec")).toEqual(["11250ms"]);
    expect(values(enrich, "Service", "CPUQuota")).toEqual(["25%"]);
    expect(values(enrich, "Service", "MemoryMax")).toEqual([String(512 * 1024 * 1024)]);
    expect(argv(values(enrich, "Service", "ExecStart")[0] as string, "2")).toEqual([
      "/usr/local/bin/node",
      "--max-old-space-size=384",
      "/srv/shop/runtime/mbc-runtime.mjs",
      "--role",
      "service",
      "--name",
      "enrich",
      "--instance",
      "2",
    ]);
    const store = parseUnit(shop.file(`units/${SL.units.service("store")}`));
    expect(values(store, "Service", "CPUQuota")).toEqual(["150%"]);
    expect(values(enrich, "Unit", "After")[0]?.split(" ")).toEqual(["shop-registry.service", "shop-store@0.service", "shop-audit@0.service"]);
  });

  it("a unit that listens below port 1024 keeps CAP_NET_BIND_SERVICE, without a user namespace; others keep no capability", () => {
    const shop = build(lowPortsText);
    const SL = systemdLayout(shop.model);
    for (const name of [SL.units.registry, SL.units.source("web"), SL.units.service("enrich")]) {
      const u = parseUnit(shop.file(`units/${name}`));
      expect(values(u, "Service", "CapabilityBoundingSet"), name).toEqual(["CAP_NET_BIND_SERVICE"]);
      expect(values(u, "Service", "AmbientCapabilities"), name).toEqual(["CAP_NET_BIND_SERVICE"]);
      expect(values(u, "Service", "PrivateUsers"), name).toEqual(["no"]);
    }
    for (const name of [SL.units.source("replay"), SL.units.service("store")]) {
      const u = parseUnit(shop.file(`units/${name}`));
      expect(values(u, "Service", "CapabilityBoundingSet"), name).toEqual([""]);
      expect(values(u, "Service", "PrivateUsers"), name).toEqual(["yes"]);
    }
  });

  it("the sandbox: the registry writes nothing, sources and services only the data folder; node keeps W+X memory", () => {
    for (const name of [L.units.registry, L.units.source("input"), L.units.service("data-processing")]) {
      const u = unit(name);
      for (const [k, v] of [
        ["NoNewPrivileges", "yes"],
        ["ProtectSystem", "strict"],
        ["PrivateTmp", "yes"],
        ["ProtectHome", "yes"],
        ["PrivateDevices", "yes"],
        ["ProtectKernelTunables", "yes"],
        ["ProtectKernelModules", "yes"],
        ["ProtectControlGroups", "yes"],
        ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
        ["RestrictNamespaces", "yes"],
        ["LockPersonality", "yes"],
        ["MemoryDenyWriteExecute", "no"],
        ["UMask", "0077"],
        ["User", "mbc"],
        ["Group", "mbc"],
      ] as const)
        expect(values(u, "Service", k), `${name} ${k}`).toEqual([v]);
      expect(values(u, "Service", "SystemCallFilter"), name).toEqual(["@system-service", "~@privileged"]);
      expect(values(u, "Service", "ReadWritePaths"), name).toEqual(name === L.units.registry ? [] : ["/opt/mbc/design-example/data"]);
    }
  });

  it("the environment files: the runtime's settings, then each service's env", () => {
    expect(parseEnvFile(built.file("env/common.env"))).toEqual({
      MBC_SYSTEM: "/opt/mbc/design-example/runtime/system.json",
      MBC_DATA_DIR: "/opt/mbc/design-example/data",
      MBC_STATE_DIR: "/opt/mbc/design-example/data/.mbc/state/design-example",
      MBC_REGISTRY_URL: "http://127.0.0.1:7400",
    });
    const dp = unit(L.units.service("data-processing"));
    expect(values(dp, "Service", "EnvironmentFile")).toEqual([
      "/opt/mbc/design-example/env/common.env",
      "/opt/mbc/design-example/env/services/data-processing.env",
    ]);
    expect(built.artefacts.find((a) => a.path === "env/common.env")?.mode).toBe(0o600);
    expect(built.artefacts.find((a) => a.path === "install.sh")?.mode).toBe(0o755);
    expect(built.artefacts.find((a) => a.path === "uninstall.sh")?.mode).toBe(0o755);
  });

  it("runtime/ is the node target's folder", () => {
    const node = buildArtefacts(built.model, inputsFor(exampleText, built.model), ["node"]).get("node") as Artefact[];
    for (const path of ["mbc-runtime.mjs", "system.json", "handlers/process.mjs"]) {
      const content = node.find((a) => a.path === path)?.content ?? "";
      expect(built.file(`runtime/${path}`), path).toBe(typeof content === "string" ? content : Buffer.from(content).toString("utf8"));
    }
    expect(JSON.parse(built.file("runtime/package.json")).type).toBe("module");
  });

  it("a service with only an image gets no unit, and nothing waits for it", () => {
    const text = exampleText.replace("handler: builtin:jsonl-sink", "image: example/store:1");
    const b = build(text);
    expect(b.artefacts.some((a) => a.path.includes("result-storage"))).toBe(false);
    expect(values(parseUnit(b.file("units/mbc-design-example-data-processing@.service")), "Unit", "After")).toEqual(["mbc-design-example-registry.service"]);
    expect(b.file("README.md")).toContain("`result-storage`");
  });
});

describe("hostile names and values cannot inject a key, a directive or a path", () => {
  const hostile = build(hostileText, { specName: hostileSpecName });
  const benign = build(hostileText.replace(/description: .*\n/, "").replace(/installDir: .*, node: .*\}/, "installDir: /opt/x, node: /usr/bin/node }"));
  const L = systemdLayout(hostile.model);
  const unitNames = [L.units.target, L.units.registry, L.units.source("in"), L.units.source("file-in"), L.units.service("work"), L.units.service("sink")];

  it("each unit has exactly the keys of the same unit built from harmless values", () => {
    const BL = systemdLayout(benign.model);
    const benignNames = [
      BL.units.target,
      BL.units.registry,
      BL.units.source("in"),
      BL.units.source("file-in"),
      BL.units.service("work"),
      BL.units.service("sink"),
    ];
    unitNames.forEach((name, i) => {
      expect(keys(parseUnit(hostile.file(`units/${name}`))), name).toEqual(keys(parseUnit(benign.file(`units/${benignNames[i]}`))));
    });
  });

  it("every value reads back exactly", () => {
    const dataDir = `${hostileInstallDir}/data`;
    const runtime = `${hostileInstallDir}/runtime/mbc-runtime.mjs`;
    const target = parseUnit(hostile.file(`units/${L.units.target}`));
    expect(values(target, "Unit", "Description").map((v) => specifiers(v, null))).toEqual([unitTextValue(`hostile: ${hostileDescription}`)]);
    expect(unitTextValue(`hostile: ${hostileDescription}`)).toBe(`hostile: evil ${NASTY} ExecStartPre=/bin/sh -c "id" [Install] WantedBy=sysinit.target`);
    expect(values(target, "Install", "WantedBy")).toEqual(["multi-user.target"]);

    const work = parseUnit(hostile.file(`units/${L.units.service("work")}`));
    expect(argv(values(work, "Service", "ExecStart")[0] as string, "0")).toEqual([
      hostileNode,
      runtime,
      "--role",
      "service",
      "--name",
      "work",
      "--instance",
      "0",
    ]);
    expect(values(work, "Service", "EnvironmentFile").map((v) => specifiers(v, "0"))).toEqual([
      `${hostileInstallDir}/env/common.env`,
      `${hostileInstallDir}/env/services/work.env`,
    ]);
    expect(values(work, "Service", "ReadWritePaths").flatMap((v) => words(v).map((w) => specifiers(w, "0")))).toEqual([dataDir]);

    const src = parseUnit(hostile.file(`units/${L.units.source("file-in")}`));
    expect(argv(values(src, "Service", "ExecStart")[0] as string, "")).toEqual([hostileNode, runtime, "--role", "source", "--name", "file-in"]);
  });

  it("the environment files hold exactly the spec's values, for systemd's reader and for sh", () => {
    const expected = { ...hostileEnv, NUMBER: "3", BOOL: "true" };
    const file = hostile.file("env/services/work.env");
    expect(parseEnvFile(file)).toEqual(expected);
    expect(parseEnvFile(hostile.file("env/common.env"))).toEqual({
      MBC_SYSTEM: `${hostileInstallDir}/runtime/system.json`,
      MBC_DATA_DIR: `${hostileInstallDir}/data`,
      MBC_STATE_DIR: `${hostileInstallDir}/data/${hostileState}`,
      MBC_REGISTRY_URL: "http://127.0.0.1:7400",
    });
    // POSIX sh reads double-quoted values by the same rules.
    const dir = temp();
    writeFileSync(join(dir, "work.env"), file);
    const out = execFileSync(
      "sh",
      ["-c", 'set -a; . "$1"; exec "$2" -e "process.stdout.write(JSON.stringify(process.env))"', "sh", join(dir, "work.env"), process.execPath],
      {
        encoding: "utf8",
        env: {},
      },
    );
    const env = JSON.parse(out) as Record<string, string>;
    for (const [k, v] of Object.entries(expected)) expect(env[k], k).toBe(v);
  });

  it("the sink and source paths stay in system.json: no unit, environment file or script holds them", () => {
    const system = JSON.parse(hostile.file("runtime/system.json"));
    expect(system.model.services.find((s: { name: string }) => s.name === "sink").config.path).toBe(hostileSink);
    for (const a of hostile.artefacts.filter((x) => x.path.startsWith("units/") || x.path.startsWith("env/") || x.path.endsWith(".sh"))) {
      expect(String(a.content), a.path).not.toContain("cron.d");
    }
  });

  it("the spec's file name in the header stays one comment line", () => {
    const line = comment(headerText(inputsFor(hostileText, hostile.model, hostileSpecName)));
    expect(line).toMatch(/^# generated by mbc 0\.0\.0-test from evil.ExecStart=\/bin\/sh -c id #\.yaml \\ \(sha256 [0-9a-f]{64}\) — do not edit$/);
    for (const a of hostile.artefacts.filter((x) => x.path.startsWith("units/") || x.path.startsWith("env/") || x.path.startsWith("sysusers/"))) {
      expect(String(a.content).split("\n")[0], a.path).toBe(line);
    }
    for (const f of ["install.sh", "uninstall.sh"]) expect(hostile.file(f).split("\n")[1], f).toBe(line);
    expect(Object.keys(parseEnvFile(hostile.file("env/common.env")))).toEqual(["MBC_SYSTEM", "MBC_DATA_DIR", "MBC_STATE_DIR", "MBC_REGISTRY_URL"]);
  });

  it("what no file can hold is refused, not changed", () => {
    const model = hostile.model;
    const withSystemd = (patch: Partial<Model["targets"]["systemd"]>) => ({
      ...model,
      targets: { ...model.targets, systemd: { ...model.targets.systemd, ...patch } },
    });
    const refuses = (m: Model, what: RegExp) => expect(() => systemdGenerator.generate(m, inputsFor(hostileText, m))).toThrow(what);
    refuses(withSystemd({ installDir: "/opt/../etc" }), /installDir .* segment/);
    refuses(withSystemd({ installDir: "/" }), /installDir .* root folder/);
    refuses(withSystemd({ installDir: "/opt/a\nb" }), /installDir .* control character/);
    refuses(withSystemd({ installDir: "/opt//x" }), /installDir .* segment/);
    for (const node of ["/usr/bin/node\nExecStartPre=/bin/sh", "/opt/it's/node", '/opt/"q"/node', "/opt/back\\slash/node", "node"])
      refuses(withSystemd({ node }), /targets\.systemd\.node/);
    refuses({ ...model, checkpoint: { ...model.checkpoint, dir: "../../../etc" } }, /checkpoint\.dir .* leaves INSTALLDIR\/data/);
    refuses({ ...model, checkpoint: { ...model.checkpoint, dir: "/var/lib/x" } }, /checkpoint\.dir .* is absolute/);
    // Names are safe by the schema; a model that bypassed it is refused all the same.
    refuses(withSystemd({ prefix: "x\nExecStart=/bin/sh" }), /not a safe unit/);
    refuses(withSystemd({ user: "root\nUser=root" }), /not a safe unit/);
    const svc = model.services[0] as Model["services"][number];
    refuses({ ...model, services: [{ ...svc, name: "../../etc/x" }, ...model.services.slice(1)] }, /not a safe unit/);
    refuses({ ...model, services: [{ ...svc, env: { "A=B": "x" } }, ...model.services.slice(1)] }, /environment variable name/);
    refuses({ ...model, services: [{ ...svc, env: { NUL: "a\u0000b" } }, ...model.services.slice(1)] }, /NUL/);
  });

  it("the escaping functions, one by one", () => {
    expect(unitText("a%b\nc\\")).toBe("a%%b c");
    expect(unitPath("/a b/%h/\"'\\x")).toBe("/a b/%%h/\"'\\x");
    expect(() => unitPath("relative")).toThrow(UnsafeValueError);
    expect(execLine(["/bin/x", "a b", "%", "$HOME", '"\\', INSTANCE])).toBe('/bin/x "a b" "%%" "$$HOME" "\\"\\\\" %i');
    expect(execLine(["/a b/$x%", "$x"])).toBe('"/a b/$x%%" "$$x"');
    expect(() => execLine(["-/bin/x"])).toThrow(UnsafeValueError);
    expect(() => execLine(["/bin/it's"])).toThrow(UnsafeValueError);
    expect(unitList(["/a b", "/c$d"])).toBe('"/a b" "/c$d"');
    expect(comment("a\nb \\")).toBe("# a b");
    expect(envAssignment("K", 'a"b\\c`d$e\nf')).toBe('K="a\\"b\\\\c\\`d\\$e\nf"');
    expect(shellWord("it's")).toBe("'it'\\''s'");
  });
});
