// The portal's weight and speed on the demo, measured in the browser and reported (printed and
// written to target/portal-sizes.txt): the compressed size of the initial load (the login page)
// and the time from a reload of the dashboard to its numbers painted, session restored from the
// cookie. What it asserts: every asset comes compressed and the dashboard shows its numbers.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { A, signIn } from "./fixtures";

test("sizes: the initial load comes compressed; its size and the dashboard's paint time are reported", async ({ page, request }) => {
  const assets: string[] = [];
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/assets/")) {
      assets.push(r.url());
      expect(r.headers()["content-encoding"], r.url()).toMatch(/^(br|gzip)$/);
    }
  });
  await page.goto("/login");
  await page.waitForLoadState("networkidle");
  const initial = await page.evaluate(() =>
    [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")].map((e) => ({
      name: e.name,
      encoded: (e as PerformanceResourceTiming).encodedBodySize,
      decoded: (e as PerformanceResourceTiming).decodedBodySize,
    })),
  );
  expect(assets.length).toBeGreaterThan(0);
  let gzip = 0;
  for (const e of initial) {
    const r = await request.get(e.name, { headers: { "accept-encoding": "gzip" } });
    expect(r.ok()).toBeTruthy();
    const length = Number(r.headers()["content-length"] ?? NaN);
    gzip += Number.isFinite(length) ? length : (await r.body()).length;
  }
  const received = initial.reduce((n, e) => n + e.encoded, 0);
  const raw = initial.reduce((n, e) => n + e.decoded, 0);

  // Time from a reload of / to the four totals painted (recorded by a MutationObserver that starts
  // with the page), five times.
  await page.addInitScript(() => {
    const w = window as unknown as { dashboardPainted?: number };
    new MutationObserver((_, observer) => {
      const el = document.querySelector('[data-testid="classes-watched"]');
      if (el && /^\d+$/.test(el.textContent ?? "")) {
        w.dashboardPainted = performance.now();
        observer.disconnect();
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await signIn(page, A.admin);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    await page.reload();
    await expect(page.getByTestId("classes-watched")).toHaveText(/^\d+$/);
    times.push(await page.evaluate(() => (window as unknown as { dashboardPainted: number }).dashboardPainted));
  }
  times.sort((a, b) => a - b);
  const kb = (n: number) => `${(n / 1024).toFixed(1)} kB`;
  const report = [
    "| measure | value |",
    "|---|---|",
    `| initial load (login page: HTML, JS, CSS), gzip | ${kb(gzip)} |`,
    `| initial load, as this Chromium received it (brotli over https, gzip over http) | ${kb(received)} |`,
    `| initial load, uncompressed | ${kb(raw)} |`,
    `| reload of / to the dashboard's numbers painted, median of 5 | ${times[2].toFixed(0)} ms |`,
    `| same, slowest of 5 | ${times[4].toFixed(0)} ms |`,
  ].join("\n");
  console.log(`\n${report}\n`);
  writeFileSync(join(process.env.PORTAL_SCREENSHOTS ?? ".", "..", "portal-sizes.txt"), `${report}\n`);
});
