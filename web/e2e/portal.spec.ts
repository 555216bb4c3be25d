import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { expect, test, type Page } from "@playwright/test";
import { A, apiGet, B, checkScreen, signIn, unique } from "./fixtures";

async function useApiKey(page: Page, key: string) {
  await page.goto("/vouchers");
  await page.getByLabel("Client API key").fill(key);
  await page.getByRole("button", { name: "Use this key" }).click();
}

test("login: a wrong password is refused clearly, the right one opens the dashboard, logout ends it", async ({ page }) => {
  await page.goto("/login");
  await checkScreen(page, "login");
  await page.getByLabel("Email").fill(A.admin.email);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText(/invalid|incorrect|wrong/i);
  await signIn(page, A.admin);
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto("/members");
  await expect(page).toHaveURL(/\/login$/);
});

test("login: after too many failures the page says how long to wait", async ({ page }) => {
  const email = `${unique("nobody")}@example.com`;
  await page.goto("/login");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("wrong-password");
  for (let i = 0; i < 6; i++) await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText(/Too many attempts\. Try again in \d+ minutes?\./);
});

test("dashboard: the four totals and the funnel equal the API's answers", async ({ page, request }) => {
  const d = await apiGet(request, A.admin, "/partner/dashboard");
  await signIn(page, A.admin);
  await expect(page.getByTestId("total-members")).toHaveText(String(d.totalMembers));
  await expect(page.getByTestId("active-members")).toHaveText(String(d.activeMembers));
  await expect(page.getByTestId("watch-minutes")).toHaveText(`${d.totalWatchTimeMinutes} min`);
  await expect(page.getByTestId("classes-watched")).toHaveText(String(d.totalClassesWatched));
  expect(d.totalMembers).toBeGreaterThan(0);
  await expect(page.getByRole("img", { name: /Watch time in minutes per day/ })).toBeVisible();
  await checkScreen(page, "dashboard");
});

test("a reload keeps the session, and no token is readable by scripts", async ({ page }) => {
  await signIn(page, A.admin);
  await page.getByRole("link", { name: "Members" }).click();
  await expect(page.getByRole("heading", { name: "Members", level: 1 })).toBeVisible();
  await page.reload();
  await expect(page).toHaveURL(/\/members$/);
  await expect(page.getByRole("heading", { name: "Members", level: 1 })).toBeVisible();
  const stored = await page.evaluate(() => ({
    local: Object.keys(localStorage),
    session: sessionStorage.length,
    cookie: document.cookie,
  }));
  expect(stored.local.filter((k) => !k.startsWith("portal.apiKey."))).toEqual([]);
  expect(stored.session).toBe(0);
  expect(stored.cookie).toBe("");
  const cookies = await page.context().cookies();
  const refresh = cookies.find((c) => c.name === "portal_refresh");
  expect(refresh?.httpOnly).toBe(true);
  expect(refresh?.sameSite).toBe("Strict");
  expect(refresh?.path).toBe("/partner-auth");
});

test("vouchers: generate 10, see them listed, export them and download a file that holds them", async ({ page }) => {
  await signIn(page, A.admin);
  await useApiKey(page, A.apiKey);
  await expect(page.getByTestId("vouchers-total")).not.toHaveText("…");
  const before = Number(await page.getByTestId("vouchers-total").textContent());
  await checkScreen(page, "vouchers");
  const prefix = unique("PW").slice(0, 12).toUpperCase();
  await page.getByText("Generate codes").click();
  await page.getByLabel("Quantity").fill("10");
  await page.getByLabel("Prefix (optional)").fill(prefix);
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await expect(page.getByRole("status").filter({ hasText: "10 new codes." })).toBeVisible();
  const codes = (await page.getByTestId("new-codes").inputValue()).split("\n");
  expect(codes).toHaveLength(10);
  for (const c of codes) expect(c.startsWith(`${prefix}-`)).toBe(true);
  await expect(page.getByTestId("vouchers-total")).toHaveText(String(before + 10));
  await expect(page.getByTestId("redemption-rate")).toHaveText(/%$/);
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download codes" }).click();
  expect(await readFile(await (await download).path(), "utf8")).toContain(codes[0]);

  await page.getByLabel("Search").fill(prefix);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.getByRole("cell", { name: codes[9], exact: true })).toBeVisible();
  await expect(page.locator("tbody tr")).toHaveCount(10);

  await page.getByRole("button", { name: "Export CSV" }).click();
  await expect(page).toHaveURL(/\/exports\?job=/);
  const job = new URL(page.url()).searchParams.get("job")!;
  const row = page.getByTestId(`export-${job}`);
  await expect(row).toHaveAttribute("data-status", "completed", { timeout: 30_000 });
  await expect(row.getByTestId("export-rows")).toHaveText(/^(\d+) of \1 rows$/);
  await checkScreen(page, "exports");
  const file = page.waitForEvent("download");
  await row.getByRole("button", { name: /Download/ }).click();
  const csv = await readFile(await (await file).path(), "utf8");
  for (const c of codes) expect(csv).toContain(c);
});

test("vouchers: revoking asks first, then the code shows as revoked", async ({ page }) => {
  await signIn(page, A.admin);
  await useApiKey(page, A.apiKey);
  await page.getByText("Generate codes").click();
  const prefix = unique("RV").slice(0, 12).toUpperCase();
  await page.getByLabel("Quantity").fill("1");
  await page.getByLabel("Prefix (optional)").fill(prefix);
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  const code = (await page.getByTestId("new-codes").inputValue()).trim();
  await page.getByLabel("Search").fill(code);
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("button", { name: `Revoke ${code}` }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog).toContainText(code);
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(page.getByRole("cell", { name: "active" })).toBeVisible();
  await page.getByRole("button", { name: `Revoke ${code}` }).click();
  await dialog.getByRole("button", { name: "Revoke" }).click();
  await expect(page.getByRole("cell", { name: "revoked" })).toBeVisible();
});

test("members: search finds a member, whose page shows the API's figures and history", async ({ page, request }) => {
  const list = await apiGet(request, A.admin, "/partner/members?sort=-watchTime&limit=1");
  const m = list.members[0];
  const detail = await apiGet(request, A.admin, `/partner/members/${m.id}`);
  await signIn(page, A.admin);
  await page.goto("/members");
  await checkScreen(page, "members");
  await page.getByLabel("Search").fill(m.email);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.locator("tbody tr")).toHaveCount(1);
  await page.getByRole("link", { name: m.name }).click();
  await expect(page.getByRole("heading", { name: m.name, level: 1 })).toBeVisible();
  await expect(page.getByText(`${detail.stats.totalWatchTimeMinutes} min`)).toBeVisible();
  await expect(page.locator("tbody tr")).toHaveCount(Math.min(20, detail.historyPagination.total));
  await checkScreen(page, "member");
});

test("analytics: switching the period shows that period's range and totals", async ({ page, request }) => {
  await signIn(page, A.admin);
  await page.getByRole("link", { name: "Analytics" }).click();
  for (const [button, period] of [
    ["Week", "week"],
    ["Quarter", "quarter"],
    ["Month", "month"],
  ]) {
    const a = await apiGet(request, A.admin, `/partner/analytics?period=${period}`);
    await page.getByRole("button", { name: button, exact: true }).click();
    await expect(page.getByTestId("analytics-range")).toContainText(`${a.range.startDate} to ${a.range.endDate}`);
    await expect(page.getByTestId("analytics-minutes")).toHaveText(`${a.totals.watchTimeMinutes} min`);
  }
  await expect(page.getByTestId("analytics-range")).toContainText("Europe/Berlin");
  await page.getByRole("button", { name: "Custom", exact: true }).click();
  await page.getByLabel("From", { exact: true }).fill("2026-01-01");
  await page.getByLabel("To", { exact: true }).fill("2026-01-31");
  await expect(page.getByTestId("analytics-range")).toContainText("2026-01-01 to 2026-01-31");
  await page.getByRole("button", { name: "Month", exact: true }).click();
  await checkScreen(page, "analytics");
});

test("content: an edit shows the sanitized preview at once, and saving stores exactly that", async ({ page, request }) => {
  await signIn(page, A.admin);
  await page.getByRole("link", { name: "Content" }).click();
  const title = unique("About ");
  const editor = page.getByLabel("About page (HTML)");
  await editor.fill(
    `<h2>${title}</h2><p onclick="steal()">Body <a href="javascript:alert(1)">link</a></p><script>document.title='pwned'</script><img src="https://example.com/x.png" onerror="steal()">`,
  );
  const preview = page.getByTestId("content-preview");
  await expect(preview.getByRole("heading", { name: title })).toBeVisible();
  const html = await preview.innerHTML();
  for (const banned of ["<script", "onclick", "onerror", "javascript:", "steal()"]) expect(html).not.toContain(banned);
  expect(await page.title()).not.toBe("pwned");
  await expect(page.getByTestId("alt-hint")).toContainText("1 image has no alt text");
  await page.getByRole("button", { name: "Save About" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Saved." })).toBeVisible();
  const stored = await apiGet(request, A.admin, "/partner/strings");
  expect(stored.st_aboutus).toBe(html);
  await checkScreen(page, "content");
  await page.getByRole("tab", { name: "Privacy" }).click();
  await expect(page.getByLabel("Privacy page (HTML)")).toBeVisible();
});

test("products: create, filter by status and type, edit and delete", async ({ page }) => {
  await signIn(page, A.admin);
  await page.getByRole("link", { name: "Products" }).click();
  const name = unique("Kettlebell ");
  const type = unique("gear");
  await page.getByRole("button", { name: "New product" }).click();
  const form = page.getByRole("form", { name: "New product" });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Type").fill(type);
  await form.getByLabel("Price").fill("29.99");
  await form.getByLabel("Status").selectOption("active");
  await form.getByLabel("Sort order").fill("5");
  await form.getByRole("button", { name: "Create product" }).click();
  await page.getByRole("search").getByLabel("Type").fill(type);
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.locator("tbody tr")).toHaveCount(1);
  await expect(page.getByRole("cell", { name: "29.99 USD" })).toBeVisible();
  await page.getByRole("search").getByLabel("Status").selectOption("draft");
  await expect(page.locator("tbody tr")).toHaveCount(0);
  await page.getByRole("search").getByLabel("Status").selectOption("active");
  await expect(page.locator("tbody tr")).toHaveCount(1);
  await page.getByRole("button", { name: `Edit ${name}` }).click();
  const edit = page.getByRole("form", { name: `Edit ${name}` });
  await edit.getByLabel("Price").fill("19.50");
  await edit.getByRole("button", { name: "Save product" }).click();
  await expect(page.getByRole("cell", { name: "19.50 USD" })).toBeVisible();
  await checkScreen(page, "products");
  // A bad price is refused with the field named, and nothing changes.
  await page.getByRole("button", { name: `Edit ${name}` }).click();
  await edit.getByLabel("Price").fill("");
  await edit.getByLabel("Link").fill("ftp://example.com/x");
  await edit.getByRole("button", { name: "Save product" }).click();
  await expect(edit.getByRole("alert")).toContainText(/externalUrl|valid URL|URL/i);
  await edit.getByRole("button", { name: "Cancel" }).click();
  await page.getByRole("button", { name: `Delete ${name}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
  await expect(page.locator("tbody tr")).toHaveCount(0);
});

test("billing: the month's billable count equals the API's; export leads to the exports page", async ({ page, request }) => {
  const now = new Date();
  const b = await apiGet(request, A.admin, `/partner/billing?month=${now.getMonth() + 1}&year=${now.getFullYear()}`);
  await signIn(page, A.admin);
  await page.getByRole("link", { name: "Billing" }).click();
  await expect(page.getByTestId("billable-count")).toHaveText(String(b.activeMemberCount));
  await checkScreen(page, "billing");
  await page.getByRole("button", { name: "Export CSV" }).click();
  await expect(page).toHaveURL(/\/exports\?job=/);
});

test("audit log: an admin sees the programme's changes", async ({ page }) => {
  await signIn(page, A.admin);
  await page.getByRole("link", { name: "Audit log" }).click();
  await expect(page.getByRole("heading", { name: "Audit log", level: 1 })).toBeVisible();
  await expect(page.locator("tbody tr").first()).toBeVisible();
  await checkScreen(page, "audit-log");
});

test("a viewer sees no write controls anywhere, and admin pages say so instead of failing", async ({ page }) => {
  await signIn(page, A.viewer);
  const nav = page.getByRole("navigation", { name: "Main" });
  await expect(nav.getByRole("link", { name: "Audit log" })).toHaveCount(0);
  await expect(nav.getByRole("link", { name: "Team & API keys" })).toHaveCount(0);
  await useApiKey(page, A.apiKey);
  await expect(page.getByTestId("vouchers-total")).not.toHaveText("…");
  await expect(page.getByText("Generate codes")).toHaveCount(0);
  await expect(page.getByRole("button", { name: /^Revoke/ })).toHaveCount(0);
  await page.goto("/affiliate");
  await expect(page.getByRole("heading", { name: "Products", level: 1 })).toBeVisible();
  await expect(page.getByRole("button", { name: "New product" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: /^(Edit|Delete)/ })).toHaveCount(0);
  await page.goto("/content");
  await expect(page.getByRole("heading", { name: "Content", level: 1 })).toBeVisible();
  await expect(page.getByRole("textbox")).toHaveCount(0);
  await expect(page.getByRole("button", { name: /^Save/ })).toHaveCount(0);
  await checkScreen(page, "content-viewer");
  for (const path of ["/team", "/audit-log"]) {
    await page.goto(path);
    await expect(page.getByRole("status")).toContainText("Only admins");
  }
});

test("partner B sees none of partner A's data, and A's API key does not open B's vouchers", async ({ page, request }) => {
  const aMembers = await apiGet(request, A.admin, "/partner/members?limit=5");
  await signIn(page, B.admin);
  await expect(page.getByTestId("total-members")).toHaveText("0");
  await page.goto("/members");
  await expect(page.getByText("(0 members)")).toBeVisible();
  for (const m of aMembers.members) await expect(page.getByText(m.email)).toHaveCount(0);
  await page.goto("/exports");
  await expect(page.getByText("No exports yet.")).toBeVisible();
  await page.goto("/affiliate");
  await expect(page.getByText("(0 products)")).toBeVisible();
  await page.goto("/content");
  await expect(page.getByLabel("About page (HTML)")).toHaveValue("");
  await useApiKey(page, A.apiKey);
  await expect(page.getByRole("alert")).toBeVisible();
  await expect(page.getByLabel("Client API key")).toBeVisible();
});

test("team: add a member, change their role, deactivate them; the last admin cannot be demoted", async ({ page, browser }) => {
  await signIn(page, B.admin);
  await page.getByRole("link", { name: "Team & API keys" }).click();
  await checkScreen(page, "team");
  const email = `${unique("staff")}@b.example`;
  await page.getByText("Add a team member").click();
  await page.getByLabel("Name", { exact: true }).fill("New Colleague");
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("First password").fill("colleague-pass-1");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await expect(page.getByRole("status").filter({ hasText: `${email} can now sign in.` })).toBeVisible();
  await expect(page.getByLabel(`Role of ${email}`)).toHaveValue("viewer");

  // The last active admin cannot demote themself.
  await page.getByLabel(`Role of ${B.admin.email}`).selectOption("viewer");
  await expect(page.getByRole("alert")).toContainText(/admin/i);
  await expect(page.getByLabel(`Role of ${B.admin.email}`)).toHaveValue("admin");

  // The colleague signs in elsewhere; deactivating them ends that session at once.
  const other = await browser.newContext();
  const colleague = await other.newPage();
  await signIn(colleague, { email, password: "colleague-pass-1" });
  await page.getByLabel(`Role of ${email}`).selectOption("admin");
  await expect(page.getByLabel(`Role of ${email}`)).toHaveValue("admin");
  await page.getByRole("button", { name: `Deactivate ${email}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Deactivate" }).click();
  await expect(page.getByRole("button", { name: `Reactivate ${email}` })).toBeVisible();
  await colleague.goto("/members");
  await expect(colleague).toHaveURL(/\/login$/);
  await other.close();
});

test("API keys: create one, use it for vouchers in this browser, revoke it and it stops working", async ({ page }) => {
  await signIn(page, B.admin);
  await page.getByRole("link", { name: "Team & API keys" }).click();
  const name = unique("Key ");
  await page.getByLabel("New key name").fill(name);
  await page.getByRole("button", { name: "Create key" }).click();
  const key = await page.getByTestId("new-api-key").inputValue();
  expect(key.length).toBeGreaterThan(20);
  await page.getByRole("button", { name: "Use it for vouchers in this browser" }).click();
  await expect(page.getByRole("button", { name: "Kept in this browser" })).toBeDisabled();
  await page.getByRole("link", { name: "Vouchers" }).click();
  await expect(page.getByTestId("vouchers-total")).toHaveText("0");
  await page.getByRole("link", { name: "Team & API keys" }).click();
  // The list never shows the key itself.
  await expect(page.getByText(key)).toHaveCount(0);
  await page.getByRole("button", { name: `Revoke key ${name}` }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke key" }).click();
  await expect(page.getByRole("row", { name: new RegExp(name) })).toContainText("Revoked");
  await page.getByRole("link", { name: "Vouchers" }).click();
  await expect(page.getByLabel("Client API key")).toBeVisible();
  await page.getByLabel("Client API key").fill(key);
  await page.getByRole("button", { name: "Use this key" }).click();
  await expect(page.getByRole("alert")).toBeVisible();
});

test("exports: an expired file and a failed job say so and offer no download", async ({ page }) => {
  // The world's own database (scripts/world.sh): the test ages one job and fails another, as time
  // and a broken store would.
  const sql = (statement: string) => execFileSync("psql", [process.env.DATABASE_URL!, "-qtAX", "-c", statement]);
  await signIn(page, B.admin);
  const jobs: string[] = [];
  for (let i = 0; i < 2; i++) {
    await page.goto("/members");
    await page.getByRole("button", { name: "Export CSV" }).click();
    await expect(page).toHaveURL(/\/exports\?job=/);
    const job = new URL(page.url()).searchParams.get("job")!;
    await expect(page.getByTestId(`export-${job}`)).toHaveAttribute("data-status", "completed", { timeout: 30_000 });
    jobs.push(job);
  }
  sql(`UPDATE export_jobs SET expires_at = now() - interval '1 minute' WHERE id = '${jobs[0]}'`);
  sql(`UPDATE export_jobs SET status = 'failed', error = 'the export store did not answer', storage_key = NULL WHERE id = '${jobs[1]}'`);
  await page.reload();
  const expired = page.getByTestId(`export-${jobs[0]}`);
  await expect(expired.getByText("Expired")).toBeVisible();
  await expect(expired.getByRole("button", { name: /Download/ })).toHaveCount(0);
  const failed = page.getByTestId(`export-${jobs[1]}`);
  await expect(failed).toContainText("the export store did not answer");
  await expect(failed.getByText("Failed")).toBeVisible();
  await expect(failed.getByRole("button", { name: /Download/ })).toHaveCount(0);
});

test("every screen works at a 390-pixel phone width", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto("/login");
  await checkScreen(page, "login");
  await signIn(page, A.admin);
  for (const [path, name] of [
    ["/", "dashboard"],
    ["/analytics", "analytics"],
    ["/members", "members"],
    ["/billing", "billing"],
    ["/exports", "exports"],
    ["/content", "content"],
    ["/affiliate", "products"],
    ["/audit-log", "audit-log"],
    ["/team", "team"],
  ]) {
    await page.goto(path);
    await expect(page.getByRole("heading", { level: 1 })).toBeVisible();
    await checkScreen(page, name);
  }
  await useApiKey(page, A.apiKey);
  await expect(page.getByTestId("vouchers-total")).not.toHaveText("…");
  await checkScreen(page, "vouchers");
});
