// Browser tests of the partner portal: Debian's Chromium (no browser download), driven by
// Playwright against a real portal-api and portal-worker that scripts/portal-test.sh starts and
// describes in the environment (PORTAL_URL, the demo logins, a second partner).
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "e2e",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: process.env.PORTAL_TEST_OUTPUT ?? "test-results",
  use: {
    baseURL: process.env.PORTAL_URL,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
