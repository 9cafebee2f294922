#!/usr/bin/env node
/**
 * npm run test:stress: the runtime and tools tiers while two busy loops occupy both cores, as on
 * a shared CI machine. A test that passes here depends on conditions, not on how fast the machine
 * is. Extra arguments go to vitest (e.g. a file filter). The loops stop with this script, whatever
 * way it ends.
 */
import { spawn } from "node:child_process";

const loops = [0, 1].map(() => spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" }));
const stopLoops = () => {
  for (const loop of loops) if (loop.exitCode === null && loop.signalCode === null) loop.kill("SIGKILL");
};
process.on("exit", stopLoops);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    stopLoops();
    process.exit(130);
  });
}

const args = ["vitest", "run", "--project", "runtime", "--project", "tools", ...process.argv.slice(2)];
process.stdout.write(`two busy loops running (pids ${loops.map((l) => l.pid).join(", ")}); npx ${args.join(" ")}\n`);
const vitest = spawn("npx", args, { stdio: "inherit" });
vitest.on("exit", (code, signal) => {
  stopLoops();
  process.exit(code ?? (signal ? 1 : 0));
});
