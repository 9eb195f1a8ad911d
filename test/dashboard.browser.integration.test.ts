/**
 * The built-in dashboard page in a real browser: 5,000 generated events go through the real broker, the pricing
 * worker and the aggregator into ClickHouse; headless Chromium (driven by playwright-core) opens /dashboard, signs in
 * with an org key, and every figure the page shows for the MTD/QTD/YTD tiles, spend by model and the cap statuses
 * equals what the API answers for the same routes (string equality once the thousands separators are removed), and
 * the tile totals equal an independent recomputation from the generated events. Panels for routes this server does
 * not have yet (404) must say "not available"; those it has must match the API too. The forecast panel shows what the
 * forecast route answered the page (its projections move with the clock), with the recomputed MTD total as spend to
 * date and the caps' limits. The Activity tiles (DAU, WAU, MAU, seats, utilization) and the Spend by group panel show
 * the API's answers, and those equal a recomputation here from the generated events (distinct users per UTC day
 * window; net spend per policy group, a user in two groups counting in both). A screenshot is saved to
 * test/artifacts/dashboard.png.
 *
 * The page is served by the API child itself when server.ts registers it; until then by a small front server here
 * (the same registerDashboard routes on a fastify instance, with /v1/* piped to the API child).
 *
 * Needs Chromium: CHROMIUM_PATH, else /usr/bin/chromium (Debian: `apt-get install chromium`); skipped without it.
 */
import { existsSync, mkdirSync } from "node:fs";
import { createServer as createHttpServer, request as httpRequest, type Server } from "node:http";
import { join } from "node:path";
import type { Forecast } from "@usage/forecast";
import { netCost } from "@usage/money";
import { type Window, windowAsOf } from "@usage/periods";
import { generateEventArray } from "@usage/workload";
import Fastify from "fastify";
import { type Browser, chromium, type Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { loadDashboard, registerDashboard } from "../services/api/src/dashboard.js";
import type { OrgForecast } from "../services/api/src/forecast-routes.js";
import { Exact } from "./harness/exact.js";
import {
  freePort,
  pipelineEnv,
  priceDistinct,
  REPO_ROOT,
  resetTopics,
  runCli,
  spawnCli,
  testKafka,
  waitFor,
} from "./harness/index.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// CI (.ci/run) installs Chromium: there a missing browser fails the test instead of skipping it.
const HAS_CHROMIUM = existsSync(CHROMIUM) || process.env.CI === "true";
const SKIP_NOTE = HAS_CHROMIUM
  ? ""
  : ` [skipped: no Chromium at ${CHROMIUM}; install it (apt-get install chromium) or set CHROMIUM_PATH]`;

const COUNT = 5_000;
const ORG = "org_1";
const OPERATOR_KEY = "test-operator-key-dashboard-0123";
const ARTIFACTS = join(REPO_ROOT, "test/artifacts");

const POLICY = {
  mode: "override",
  multi_group: "lowest",
  discount_pct: "7.5",
  thresholds: ["0.5", "0.8", "1"],
  org_limit: "250000",
  seat_tier_limits: { chat: "40", chat_code: "200", standard: "120", premium: "400", enterprise: "unlimited" },
  // ops has no limit (no cap candidate); u_1_4 is in both groups, so it counts in both group rows.
  groups: { research: { limit: "100", members: ["u_1_3", "u_1_4"] }, ops: { members: ["u_1_4", "u_1_6"] } },
  users: { u_1_2: { limit: "unlimited", products: ["claude_code"] }, u_1_5: { limit: "0.5" } },
  product_access: { claude_code: ["research"] },
};

interface SpendBody {
  from: string;
  to: string;
  total: string;
  rows: {
    key: string;
    spend: string;
    gross_spend: string;
    requests: number;
    input_tokens: number;
    output_tokens: number;
    cache_write_tokens: number;
    cache_read_tokens: number;
  }[];
}
/** Users given a seat by the test; the last never makes a request. */
const SEAT_USERS = ["u_1_1", "u_1_2", "u_1_3", "u_seat_idle"];

interface ActivityBody {
  at: string;
  dau: number;
  wau: number;
  mau: number;
  seats_assigned: number;
  seats_active_30d: number;
  utilization: string | null;
  by_product: Record<string, { dau: number; wau: number; mau: number }>;
}
interface CapsBody {
  org: { limit: string | null; spend: string; status: string };
  users: Record<
    string,
    {
      limit: string | null;
      source: string;
      spend: string;
      remaining: string | null;
      status: string;
      blocked_by: string | null;
      products?: string[];
    }
  >;
}

/** GET/PUT/POST with a key; `undefined` for a 404 (a route this server does not have), else throws on errors. */
async function call<T>(base: string, key: string, path: string, init: RequestInit = {}): Promise<T | undefined> {
  const res = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...(init.headers ?? {}) },
  });
  if (res.status === 404) return undefined;
  const body = await res.json();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body as T;
}

async function must<T>(base: string, key: string, path: string, init: RequestInit = {}): Promise<T> {
  const body = await call<T>(base, key, path, init);
  if (body === undefined) throw new Error(`${path}: 404`);
  return body;
}

/**
 * Serves the page with registerDashboard on a fastify instance and pipes /v1/* to the API child: the page then
 * reaches the API on its own origin, as it does when the API serves it.
 */
async function startFrontServer(apiPort: number): Promise<{ base: string; close: () => Promise<void> }> {
  const app = Fastify({ logger: false });
  registerDashboard(app);
  await app.ready();
  const server: Server = createHttpServer((req, res) => {
    if (req.url?.startsWith("/v1/")) {
      const upstream = httpRequest(
        { host: "127.0.0.1", port: apiPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", (err) => {
        res.writeHead(502, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "bad_gateway", message: err.message } }));
      });
      req.pipe(upstream);
      return;
    }
    void app
      .inject({ method: req.method as "GET", url: req.url ?? "/", headers: req.headers })
      .then((answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        res.end(answer.rawPayload);
      })
      .catch((err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
    },
  };
}

/** A figure as shown, without thousands separators. */
async function shown(page: Page, testId: string): Promise<string> {
  const text = await page.getByTestId(testId).textContent({ timeout: 5_000 });
  return (text ?? "").replace(/,/g, "").trim();
}

/** What the page shows for a cap limit or remaining amount. */
const capText = (v: string | null) => (v === null ? "—" : v);

describe("dashboard page", () => {
  it("is served without a key, with a CSP that admits only its own inline script and style; / redirects", async () => {
    const app = Fastify({ logger: false });
    registerDashboard(app);
    try {
      const page = await app.inject({ method: "GET", url: "/dashboard" });
      expect(page.statusCode).toBe(200);
      expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(page.body).toContain('data-panel="mtd"');
      const csp = String(page.headers["content-security-policy"]);
      expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
      expect(csp).toMatch(/style-src 'sha256-[A-Za-z0-9+/=]+'/);
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain("default-src 'none'");
      // Self-contained: no external script, style, image or font reference.
      expect(page.body).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
      expect(page.body).not.toMatch(/@import|url\(\s*["']?https?:/i);
      const root = await app.inject({ method: "GET", url: "/" });
      expect(root.statusCode).toBe(302);
      expect(root.headers.location).toBe("/dashboard");
      expect((await app.inject({ method: "HEAD", url: "/dashboard" })).statusCode).toBe(200);
      expect(loadDashboard().html).toBe(page.body);
    } finally {
      await app.close();
    }
  });

  it.skipIf(!HAS_CHROMIUM)(
    `shows the same MTD/QTD/YTD, spend by model and caps as the API, in headless Chromium${SKIP_NOTE}`,
    async () => {
      const started = Date.now();
      const timings: string[] = [];
      const mark = (what: string) => timings.push(`${what} +${((Date.now() - started) / 1000).toFixed(1)}s`);
      await resetTopics(testKafka("dashboard-test"));

      const now = Date.now();
      const events = generateEventArray({ seed: 2718, count: COUNT, now, orgs: 1, usersPerOrg: 12, lateRate: 0.01 });
      const apiPort = await freePort();
      const base = `http://127.0.0.1:${apiPort}`;
      const env = pipelineEnv("dashboard", { port: apiPort, key: OPERATOR_KEY, now });
      const pricing = spawnCli(["run", "pricing"], env);
      const aggregator = spawnCli(["run", "aggregator"], env);
      let front: { base: string; close: () => Promise<void> } | undefined;
      let browser: Browser | undefined;
      try {
        await waitFor("the API", async () => (await fetch(`${base}/healthz`)).ok, 90_000);
        mark("API up");
        await must(base, OPERATOR_KEY, `/v1/orgs/${ORG}/policy`, { method: "PUT", body: JSON.stringify(POLICY) });
        const produced = await runCli(["produce"], { env, input: events.map((e) => JSON.stringify(e)).join("\n") });
        expect(produced.code, produced.stderr).toBe(0);
        mark("produced");

        // Independent recomputation of the net totals: price each event offline, apply the discount per event.
        const priced = priceDistinct(events, now).map(({ event, gross }) => ({
          net: Exact.of(netCost(gross, POLICY.discount_pct)),
          at: Date.parse(event.occurred_at),
          user: event.user_id,
          org: event.org_id,
        }));
        const expectedTotal = (window: Window) => {
          const range = windowAsOf(window, now);
          return priced
            .filter((x) => x.at >= range.fromMs && x.at < range.toExclusiveMs)
            .reduce((t, x) => t.plus(x.net), Exact.of(0));
        };
        await waitFor(
          "every event in the YTD total",
          async () => {
            const ytd = await must<SpendBody>(base, OPERATOR_KEY, `/v1/orgs/${ORG}/spend?window=ytd`);
            return Exact.of(ytd.total).eq(expectedTotal("ytd"));
          },
          180_000,
        );
        mark("spend recorded");

        // Seats for the Activity tiles: three generated users and one who never makes a request.
        for (const user of SEAT_USERS) {
          await must(base, OPERATOR_KEY, `/v1/orgs/${ORG}/seats/${user}`, {
            method: "PUT",
            body: JSON.stringify({ tier: "standard" }),
          });
        }

        // The page signs in with a key of the org, as an org admin would.
        const { key } = await must<{ key: string }>(base, OPERATOR_KEY, "/v1/keys", {
          method: "POST",
          body: JSON.stringify({ org_id: ORG }),
        });

        // A limit request waits for the page's Requests panel.
        await must(base, key, `/v1/orgs/${ORG}/users/u_1_5/limit-requests`, {
          method: "POST",
          body: JSON.stringify({ note: "more please" }),
        });

        const served = await fetch(`${base}/dashboard`);
        const pageBase = served.ok && served.headers.get("content-type")?.startsWith("text/html") ? base : undefined;
        if (!pageBase) front = await startFrontServer(apiPort);
        const origin = pageBase ?? front!.base;
        process.stderr.write(`dashboard test: page served by ${pageBase ? "the API" : "the test's front server"}\n`);

        browser = await chromium.launch({
          executablePath: CHROMIUM,
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
          ],
        });
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
        const page = await context.newPage();
        const problems: string[] = [];
        const foreign: string[] = [];
        page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
        page.on("console", (msg) => {
          // A panel whose route is not built yet answers 404: Chromium logs the failed fetch, the page copes.
          if (msg.type() === "error" && !/Failed to load resource.*404/.test(msg.text())) {
            problems.push(`console: ${msg.text()}`);
          }
        });
        page.on("request", (req) => {
          if (!req.url().startsWith(`${origin}/`)) foreign.push(req.url());
        });

        const landed = await page.goto(`${origin}/`);
        expect(landed?.ok()).toBe(true);
        expect(new URL(page.url()).pathname).toBe("/dashboard");
        expect(await page.locator("body").getAttribute("data-state")).toBe("idle");
        await page.getByTestId("org-input").fill(ORG);
        await page.getByTestId("key-input").fill(key);
        // The forecast moves with the clock: the page's figures are compared with the answer the page itself got.
        const forecastAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === `/v1/orgs/${ORG}/forecast`);
        await page.getByTestId("load").click();
        const settled = async () => {
          await page.locator('body[data-state="ready"], body[data-state="error"]').waitFor({ timeout: 30_000 });
          return page.locator("body").getAttribute("data-state");
        };
        expect(await settled(), (await page.locator("main").textContent()) ?? "").toBe("ready");
        mark("page loaded");

        // Tiles: the API's totals, and the independent recomputation.
        for (const window of ["mtd", "qtd", "ytd"] as const) {
          const body = await must<SpendBody>(base, key, `/v1/orgs/${ORG}/spend?window=${window}`);
          expect(await shown(page, `tile-${window}`), `tile ${window}`).toBe(body.total);
          expect(Exact.of(body.total).eq(expectedTotal(window)), `${window} recomputed`).toBe(true);
          expect(await shown(page, `tile-${window}-range`)).toBe(`${body.from} → ${body.to}`);
          expect(await shown(page, `tile-${window}-requests`)).toBe(String(body.rows[0]?.requests ?? 0));
          expect(await shown(page, `tile-${window}-gross`)).toBe(body.rows[0]?.gross_spend ?? "0");
        }

        // Activity: the API's answer on the page, and DAU/WAU/MAU/seats recomputed from the generated events as of the
        // API's day (distinct users with a request on that UTC day, in the 7 and the 30 days ending on it).
        const activity = await must<ActivityBody>(base, key, `/v1/orgs/${ORG}/activity`);
        expect(await shown(page, "activity-dau")).toBe(String(activity.dau));
        expect(await shown(page, "activity-wau")).toBe(String(activity.wau));
        expect(await shown(page, "activity-mau")).toBe(String(activity.mau));
        expect(await shown(page, "activity-seats")).toBe(String(activity.seats_assigned));
        expect(await shown(page, "activity-active")).toBe(String(activity.seats_active_30d));
        expect(await shown(page, "activity-utilization")).toBe(
          activity.utilization === null ? "—" : `${Exact.of(activity.utilization).times(100).toFixed()}%`,
        );
        for (const [product, c] of Object.entries(activity.by_product)) {
          expect(await shown(page, `activity-product-${product}-dau`)).toBe(String(c.dau));
          expect(await shown(page, `activity-product-${product}-mau`)).toBe(String(c.mau));
        }
        const atMs = Date.parse(`${activity.at}T00:00:00Z`);
        const activeIn = (days: number) =>
          new Set(
            priced
              .filter((x) => x.org === ORG && x.at >= atMs - (days - 1) * 86_400_000 && x.at < atMs + 86_400_000)
              .map((x) => x.user),
          );
        const monthly = activeIn(30);
        const activeSeats = SEAT_USERS.filter((u) => monthly.has(u)).length;
        expect(
          {
            dau: activity.dau,
            wau: activity.wau,
            mau: activity.mau,
            seats: activity.seats_assigned,
            active: activity.seats_active_30d,
          },
          "activity recomputed",
        ).toEqual({
          dau: activeIn(1).size,
          wau: activeIn(7).size,
          mau: monthly.size,
          seats: SEAT_USERS.length,
          active: activeSeats,
        });
        const ratio = Exact.of(activeSeats).div(SEAT_USERS.length);
        let expectedUtilization: string;
        try {
          expectedUtilization = ratio.toFixed();
        } catch {
          expectedUtilization = ratio.round(4, "half_up").toFixed();
        }
        expect(activity.utilization).toBe(expectedUtilization);
        expect(activity.mau).toBeGreaterThan(0);

        // Spend by group (MTD): the API's rows on the page, and each group's net spend recomputed from the events.
        const groups = await must<SpendBody & { overlapping: boolean; note: string }>(
          base,
          key,
          `/v1/orgs/${ORG}/spend?group_by=group&window=mtd`,
        );
        expect(groups.overlapping).toBe(true);
        expect(await page.locator('[data-testid="groups-table"] tbody tr').count()).toBe(groups.rows.length);
        for (const row of groups.rows) {
          expect(await shown(page, `group-${row.key}-spend`), `group ${row.key}`).toBe(row.spend);
          expect(await shown(page, `group-${row.key}-requests`)).toBe(String(row.requests));
        }
        expect(await shown(page, "groups-total")).toBe(groups.total);
        const mtdRange = windowAsOf("mtd", now);
        const groupNet = new Map<string, Exact>(Object.keys(POLICY.groups).map((g) => [g, Exact.of(0)]));
        for (const x of priced) {
          if (x.at < mtdRange.fromMs || x.at >= mtdRange.toExclusiveMs) continue;
          const names = Object.entries(POLICY.groups)
            .filter(([, g]) => g.members.includes(x.user))
            .map(([name]) => name);
          for (const name of names.length ? names : ["(none)"]) {
            groupNet.set(name, (groupNet.get(name) ?? Exact.of(0)).plus(x.net));
          }
        }
        expect(Object.fromEntries(groups.rows.map((r) => [r.key, r.spend])), "groups recomputed").toEqual(
          Object.fromEntries([...groupNet].map(([k, v]) => [k, v.toFixed()])),
        );
        expect(Exact.of(groups.total).eq(expectedTotal("mtd"))).toBe(true);
        process.stderr.write(
          `dashboard test: activity ${activity.at}: dau ${activity.dau} wau ${activity.wau} mau ${activity.mau} seats ` +
            `${activity.seats_active_30d}/${activity.seats_assigned} = ${activity.utilization}; MTD by group ` +
            `${groups.rows.map((r) => `${r.key}=${r.spend}`).join(" ")} (total ${groups.total})\n`,
        );

        // Spend by model, in the window the page shows (MTD first, then QTD after switching).
        const checkModels = async (window: Window) => {
          const body = await must<SpendBody>(base, key, `/v1/orgs/${ORG}/spend?window=${window}&group_by=model`);
          expect(body.rows.length).toBeGreaterThan(0);
          expect(await page.locator('[data-testid="model-table"] tbody tr').count()).toBe(body.rows.length);
          for (const row of body.rows) {
            const id = `model-row-${row.key}`;
            expect(await shown(page, `${id}-spend`), `${window} ${id}`).toBe(row.spend);
            expect(await shown(page, `${id}-gross`), `${window} ${id} gross`).toBe(row.gross_spend);
            expect(await shown(page, `${id}-requests`)).toBe(String(row.requests));
            expect(await shown(page, `${id}-input`)).toBe(String(row.input_tokens));
            expect(await shown(page, `${id}-output`)).toBe(String(row.output_tokens));
            expect(await shown(page, `${id}-cache-write`)).toBe(String(row.cache_write_tokens));
            expect(await shown(page, `${id}-cache-read`)).toBe(String(row.cache_read_tokens));
          }
        };
        await checkModels("mtd");

        // Caps: the org and every user, status badges included.
        const caps = await must<CapsBody>(base, key, `/v1/orgs/${ORG}/caps`);
        expect(await shown(page, "cap-org-status")).toBe(caps.org.status);
        expect(await shown(page, "cap-org-spend")).toBe(caps.org.spend);
        expect(await shown(page, "cap-org-limit")).toBe(capText(caps.org.limit));
        const users = Object.entries(caps.users);
        expect(users.length).toBeGreaterThan(0);
        expect(await page.locator('[data-testid="caps-table"] tbody tr').count()).toBe(users.length);
        for (const [user, cap] of users) {
          const id = `cap-${user}`;
          expect(await page.getByTestId(id).getAttribute("data-status"), id).toBe(cap.status);
          expect(await shown(page, `${id}-status`), `${id} status`).toBe(cap.status);
          expect(await shown(page, `${id}-spend`), `${id} spend`).toBe(cap.spend);
          expect(await shown(page, `${id}-limit`), `${id} limit`).toBe(capText(cap.limit));
          expect(await shown(page, `${id}-remaining`), `${id} remaining`).toBe(capText(cap.remaining));
          expect(await shown(page, `${id}-source`)).toBe(cap.source);
          expect(await shown(page, `${id}-blocked-by`)).toBe(cap.blocked_by ?? "—");
          expect(cap.products, `${id} products`).toBeDefined();
          // (shown() drops commas: they group thousands in amounts.)
          expect(await page.getByTestId(`${id}-products`).textContent()).toBe(cap.products!.join(", "));
        }
        // The policy gates claude_code to research (u_1_3, u_1_4) and grants it to u_1_2.
        expect(caps.users.u_1_2?.products).toEqual(["chat", "claude_code", "cowork"]);
        expect(caps.users.u_1_3?.products).toEqual(["chat", "claude_code", "cowork"]);
        expect(caps.users.u_1_5?.products).toEqual(["chat", "cowork"]);

        const statuses = new Set(users.map(([, c]) => c.status));
        expect(statuses.size, `statuses ${[...statuses]}`).toBeGreaterThan(1);

        // Panels of routes that may not be built yet: "not available" on a 404, else the API's figures.
        const panelState = (name: string) =>
          page.locator(`[data-panel="${name}"]`).getAttribute("data-state") as Promise<string>;
        const top = await call<{ users: { rank: number; spend: string; requests: number | string }[] }>(
          base,
          key,
          `/v1/orgs/${ORG}/top-users?window=mtd&by=spend&limit=10`,
        );
        if (top === undefined) {
          expect(await panelState("top")).toBe("unavailable");
          expect(await page.getByTestId("top-unavailable").textContent()).toContain("not available");
        } else {
          expect(await panelState("top")).toBe("ready");
          for (const u of top.users) {
            expect(await shown(page, `top-user-${u.rank}-spend`), `top user ${u.rank}`).toBe(u.spend);
            expect(await shown(page, `top-user-${u.rank}-requests`)).toBe(String(u.requests));
          }
        }
        const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
        const trends = await call<{ days: { day: string; groups: { key: string; spend: string }[] }[] }>(
          base,
          key,
          `/v1/orgs/${ORG}/trends?from=${day(Date.now() - 29 * 86_400_000)}&to=${day(Date.now())}&group_by=product`,
        );
        if (trends === undefined) {
          expect(await panelState("trend")).toBe("unavailable");
        } else {
          expect(await panelState("trend")).toBe("ready");
          for (const d of trends.days) {
            const total = d.groups.reduce((t, g) => t.plus(g.spend), Exact.of(0));
            if (!total.isZero()) expect(await shown(page, `trend-day-${d.day}-spend`), d.day).toBe(total.toFixed());
          }
        }
        const period = new Date().toISOString().slice(0, 7);
        const alerts = await call<{ alerts: unknown[] }>(base, key, `/v1/orgs/${ORG}/alerts?period=${period}`);
        expect(await panelState("alerts")).toBe(alerts === undefined ? "unavailable" : "ready");
        if (alerts !== undefined) {
          const rows = page.locator('[data-testid="alerts-table"] tbody tr');
          expect(alerts.alerts.length === 0 ? 0 : await rows.count()).toBe(Math.min(25, alerts.alerts.length));
        }

        // Forecast: the org's projection and the users projected to reach their cap, as the API answered the page;
        // its spend to date is the recomputed MTD total, its limits the caps'.
        const forecast = (await (await forecastAnswer).json()) as OrgForecast;
        expect(await panelState("forecast")).toBe("ready");
        expect(Exact.of(forecast.org.spend_to_date).eq(expectedTotal("mtd")), "forecast spend to date").toBe(true);
        expect(forecast.org.limit).toBe(caps.org.limit);
        expect(Object.keys(forecast.users)).toEqual(Object.keys(caps.users));
        for (const [user, f] of Object.entries(forecast.users)) expect(f.limit, user).toBe(caps.users[user]!.limit);
        const reachText = (f: Forecast) =>
          f.reaches_limit_on === null ? "—" : f.limit_reached ? `reached ${f.reaches_limit_on}` : f.reaches_limit_on;
        expect(await shown(page, "forecast-org-projected")).toBe(forecast.org.projected);
        expect(await shown(page, "forecast-org-limit")).toBe(capText(forecast.org.limit));
        expect(await shown(page, "forecast-org-spend")).toBe(forecast.org.spend_to_date);
        expect(await shown(page, "forecast-org-rate")).toBe(forecast.org.daily_rate);
        expect(await shown(page, "forecast-org-reach")).toBe(reachText(forecast.org));
        const reaching = Object.entries(forecast.users).filter(([, f]) => f.will_reach_limit);
        if (reaching.length === 0) {
          expect(await page.getByTestId("forecast-users-empty").isVisible()).toBe(true);
        } else {
          expect(await page.locator('[data-testid="forecast-table"] tbody tr').count()).toBe(reaching.length);
        }
        for (const [user, f] of reaching) {
          const id = `forecast-user-${user}`;
          expect(await shown(page, `${id}-projected`), `${id} projected`).toBe(f.projected);
          expect(await shown(page, `${id}-spend`), `${id} spend`).toBe(f.spend_to_date);
          expect(await shown(page, `${id}-rate`), `${id} rate`).toBe(f.daily_rate);
          expect(await shown(page, `${id}-limit`), `${id} limit`).toBe(capText(f.limit));
          expect(await shown(page, `${id}-reach`), `${id} reach`).toBe(reachText(f));
        }

        // Requests (after the forecast: approving reloads the panels): the one filed before the page loaded, approved
        // from the page with a new limit.
        const pending = await must<{ requests: { request_id: string; user_id: string }[] }>(
          base,
          key,
          `/v1/orgs/${ORG}/limit-requests?status=pending`,
        );
        expect(pending.requests.map((r) => r.user_id)).toEqual(["u_1_5"]);
        const rid = pending.requests[0]!.request_id;
        expect(await page.locator('[data-testid="requests-table"] tbody tr').count()).toBe(1);
        expect(await shown(page, `request-${rid}-user`)).toBe("u_1_5");
        await page.getByTestId(`request-${rid}-limit`).fill("12.5");
        await page.getByTestId(`request-${rid}-approve`).click();
        await page.getByTestId(`request-${rid}-outcome`).filter({ hasText: "approved" }).waitFor({ timeout: 10_000 });
        expect(await shown(page, `request-${rid}-outcome`)).toBe("approved: 12.5");
        const after = await must<{ users: Record<string, { limit?: string }> }>(base, key, `/v1/orgs/${ORG}/policy`);
        expect(after.users.u_1_5?.limit).toBe("12.5");
        expect(await settled()).toBe("ready");
        await page.getByTestId("requests-empty").waitFor({ timeout: 10_000 });
        // The key stays in this tab's sessionStorage, never in localStorage; nothing leaves the origin.
        const stored = await page.evaluate(() => {
          // This project's TypeScript has no DOM types: the browser's globals are described here.
          type Storage = { getItem(key: string): string | null } & Record<string, string>;
          const g = globalThis as unknown as { sessionStorage: Storage; localStorage: Storage };
          return {
            session: g.sessionStorage.getItem("usage.dashboard.key"),
            local: JSON.stringify({ ...g.localStorage }),
          };
        });
        expect(stored.session).toBe(key);
        expect(stored.local).not.toContain(key);
        expect(foreign).toEqual([]);
        expect(problems).toEqual([]);

        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });

        // The window switch re-reads the breakdowns for that window.
        await page.getByRole("button", { name: "QTD", exact: true }).click();
        expect(await settled()).toBe("ready");
        await checkModels("qtd");

        // A reload signs in again from sessionStorage; a wrong key is refused with a clear message.
        await page.reload();
        expect(await settled()).toBe("ready");
        expect(await shown(page, "tile-mtd")).toBe((await must<SpendBody>(base, key, `/v1/orgs/${ORG}/spend`)).total);
        await page.getByTestId("key-input").fill("uk_0000000000000000_not-a-real-key-not-a-real-key-not-a-real-k");
        await page.getByTestId("load").click();
        expect(await settled()).toBe("error");
        expect(await page.getByTestId("banner").textContent()).toContain("401");
        mark("checks done");
        process.stderr.write(`dashboard test: ${timings.join(", ")}\n`);
      } finally {
        await browser?.close();
        await front?.close();
        pricing.child.kill("SIGTERM");
        aggregator.child.kill("SIGTERM");
        await Promise.all([pricing.exited, aggregator.exited]);
      }
    },
  );
});
