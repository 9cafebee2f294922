/**
 * The HTML report of `mbc simulate --report` in a real browser: Debian's chromium, headless,
 * driven by playwright-core (which downloads no browser of its own). The charts must be there,
 * laid out with a size, with a bar and a line for every instance, and the page must make no
 * request beyond its own file. With MBC_KEEP_SCREENSHOT=1 the report and a screenshot are kept in
 * a temporary folder for a person to see; otherwise everything is removed.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimulationResult } from "../../src/simulate/index.js";
import { assertBuilt, runMbc } from "../helpers/cli.js";
import { assertTool, tool } from "../helpers/tools.js";

const CHROMIUM = "/usr/bin/chromium";
const EXAMPLE_REL = "examples/01-design-document/microbatch.yaml";

const browser = tool("chromium", () => (existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (Debian: apt-get install chromium)`));

describe.skipIf(browser.skip)("the HTML report in headless Chromium", () => {
  let dir = "";
  let profile = "";
  let context: BrowserContext | undefined;
  let result: SimulationResult;

  beforeAll(async () => {
    assertTool(browser);
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), "mbc-report-browser-"));
    profile = mkdtempSync(join(dir, "profile-"));
    // The report of an overloaded run (3500 records/s): every colour and mark shows, and its source's queue fills.
    const run = runMbc(["simulate", EXAMPLE_REL, "--rate", "3500", "--format", "json", "--report", join(dir, "report.html")]);
    expect(run.status).toBe(0);
    result = JSON.parse(run.stdout) as SimulationResult;
    // Playwright takes the profile folder as an argument, not as --user-data-dir: a fresh one per run.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
      viewport: { width: 1200, height: 900 },
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    if (dir === "") return;
    rmSync(profile, { recursive: true, force: true });
    if (process.env.MBC_KEEP_SCREENSHOT === "1") process.stderr.write(`report and screenshot: ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  });

  it("renders the three charts with a size, a bar and a line for every instance, and requests nothing", { timeout: 60_000 }, async () => {
    if (!context) throw new Error("no browser");
    const page = await context.newPage();
    const outside: string[] = [];
    await page.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file:")) return route.continue();
      outside.push(url);
      return route.abort();
    });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") errors.push(msg.text());
    });
    await page.goto(pathToFileURL(join(dir, "report.html")).href);

    const instances = result.services.flatMap((s) => s.instances.map((i) => `${s.name}#${i.index}`));
    // The laid-out size of every element a selector matches.
    const size = async (selector: string) => {
      const boxes = await Promise.all((await page.locator(selector).all()).map((el) => el.boundingBox()));
      return boxes.map((b) => b ?? { x: 0, y: 0, width: 0, height: 0 });
    };

    for (const chart of ["load", "utilisation", "latency"]) {
      const [svg] = await size(`figure[data-chart="${chart}"] svg`);
      expect(svg, chart).toBeDefined();
      expect(svg?.width, chart).toBeGreaterThan(300);
      expect(svg?.height, chart).toBeGreaterThan(100);
    }

    // Load against capacity: one bar per instance, one static-model mark per instance, one capacity line.
    const bars = await page.locator('figure[data-chart="load"] rect.bar').evaluateAll((els) => els.map((el) => el.getAttribute("data-instance")));
    expect(bars).toEqual(instances);
    for (const box of await size('figure[data-chart="load"] rect.bar')) expect(box.width).toBeGreaterThan(0);
    expect(await page.locator('figure[data-chart="load"] path.predicted').count()).toBe(instances.length);
    expect(await page.locator('figure[data-chart="load"] line.capacity').count()).toBe(1);
    // The overloaded instance's bar is red and longer than the capacity line is from the axis.
    const bar = page.locator('rect.bar[data-instance="data-processing#0"]');
    // This file is type-checked without the DOM's types: the page's window is reached through globalThis.
    const fill = await bar.evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { fill: string } }).getComputedStyle(el).fill);
    expect(fill).toBe("rgb(209, 67, 91)");
    const [box] = await size('rect.bar[data-instance="data-processing#0"]');
    const [capacity] = await size("line.capacity");
    expect((box?.x ?? 0) + (box?.width ?? 0)).toBeGreaterThan(capacity?.x ?? Number.POSITIVE_INFINITY);

    // Utilisation over time: one line per instance, each drawn with a size.
    const lines = await page.locator('figure[data-chart="utilisation"] polyline.line').evaluateAll((els) => els.map((el) => el.getAttribute("data-series")));
    expect(lines).toEqual(instances);
    for (const box of await size('figure[data-chart="utilisation"] polyline.line')) expect(box.width).toBeGreaterThan(100);

    // Latency distribution: one line per service that completed batches, and end to end.
    const latency = await page.locator('figure[data-chart="latency"] polyline.line').evaluateAll((els) => els.map((el) => el.getAttribute("data-series")));
    expect(latency).toEqual([...result.services.filter((s) => s.latencyMs.count > 0).map((s) => s.name), "end-to-end"]);
    for (const box of await size('figure[data-chart="latency"] polyline.line')) expect(box.width).toBeGreaterThan(0);

    // The verdict and the summary are there, as a person reads them.
    await expect(page.locator('[data-verdict="bad"] h2').textContent()).resolves.toMatch(/^The simulation found (a problem|\d+ problems)$/);
    // Load, retries, sources, and back-pressure: at 3500 records/s the source's queue fills and refuses records.
    expect(result.sources[0]?.recordsRefused).toBeGreaterThan(0);
    expect(await page.locator("table.summary").count()).toBe(4);
    const [pressure] = await size('table[data-table="back-pressure"]');
    expect(pressure?.height).toBeGreaterThan(0);
    expect(outside).toEqual([]);
    expect(errors).toEqual([]);

    const shot = join(dir, "report.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(20_000);
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
    await page.close();
  });
});
