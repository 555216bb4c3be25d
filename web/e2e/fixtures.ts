// What every browser test shares: the environment scripts/portal-test.sh sets, signing in through
// the login page, the API as a second opinion, and the per-screen checks (axe, no horizontal
// scrolling, a screenshot).
import { expect, type APIRequestContext, type Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the browser tests through scripts/portal-test.sh`);
  return v;
}

export const A = {
  admin: { email: env("PORTAL_ADMIN_EMAIL"), password: env("PORTAL_ADMIN_PASSWORD") },
  viewer: { email: env("PORTAL_VIEWER_EMAIL"), password: env("PORTAL_VIEWER_PASSWORD") },
  apiKey: env("PORTAL_API_KEY"),
};
export const B = { admin: { email: env("PORTAL_B_EMAIL"), password: env("PORTAL_B_PASSWORD") } };
const SHOTS = process.env.PORTAL_SCREENSHOTS ?? "screenshots";

export type Login = { email: string; password: string };

export async function signIn(page: Page, who: Login) {
  await page.goto("/login");
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Dashboard", level: 1 })).toBeVisible();
}

/** The API's own answer, for comparing with what the portal shows. */
export async function apiGet(request: APIRequestContext, who: Login, path: string, headers: Record<string, string> = {}) {
  const login = await request.post("/partner-auth/login", { data: who });
  expect(login.ok()).toBeTruthy();
  const token = (await login.json()).data.accessToken as string;
  const r = await request.get(path, { headers: { authorization: `Bearer ${token}`, ...headers } });
  expect(r.ok(), `${path}: ${r.status()}`).toBeTruthy();
  return (await r.json()).data;
}

/** axe-core finds no serious or critical violation, nothing scrolls sideways, and a screenshot is
 *  saved as `<name>-<width>.png`. */
export async function checkScreen(page: Page, name: string) {
  await page.waitForLoadState("networkidle");
  await expect(page.getByText("Loading…")).toHaveCount(0);
  // The content preview shows the partner's own HTML as the app will; the portal flags its
  // missing alt texts itself (see the content test), so axe judges the portal around it.
  const result = await new AxeBuilder({ page })
    .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"])
    .exclude('[data-testid="content-preview"]')
    .analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    `accessibility of ${name}`,
  ).toEqual([]);
  const sideways = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(sideways, `${name} scrolls sideways`).toBeLessThanOrEqual(0);
  mkdirSync(SHOTS, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  await page.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
}

export function unique(prefix: string) {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
