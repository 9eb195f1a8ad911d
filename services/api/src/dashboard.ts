/**
 * The built-in dashboard page (SPEC §1, §8): one self-contained HTML file (inline CSS and JavaScript, no external
 * fetches) that reads the org's spend, top users, trends, caps, month-end forecast and alerts from the /v1 routes with
 * the API key the admin types in (kept in the browser's sessionStorage only).
 *
 *   GET /dashboard → the page (text/html; no key needed: every data call the page makes carries the key)
 *   GET /          → 302 to /dashboard
 *
 * The page is read once, when the routes are registered, from services/api/static/dashboard.html (relative to this
 * module, so the same path works from src/ under tests and from dist/ in production). It is sent with a Content
 * Security Policy that allows only its own inline script and style (by hash) and requests to its own origin.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";

/** Where the page lives: services/api/static/dashboard.html. */
export const DASHBOARD_HTML = new URL("../static/dashboard.html", import.meta.url);

export interface DashboardPage {
  html: string;
  headers: Record<string, string>;
}

/** The page and the headers it is served with; throws when the file is missing (a broken build, not a 404). */
export function loadDashboard(file: URL = DASHBOARD_HTML): DashboardPage {
  let html: string;
  try {
    html = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`dashboard page not found at ${file.pathname}: ${(err as Error).message}`);
  }
  const hashes = (tag: "script" | "style") =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))]
      .map((m) => `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`)
      .join(" ");
  const csp = [
    "default-src 'none'",
    `script-src ${hashes("script") || "'none'"}`,
    `style-src ${hashes("style") || "'none'"}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
  return {
    html,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": csp,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    },
  };
}

/** Registers GET /dashboard and GET / on any fastify instance, whatever its logger type (buildApi's uses pino's). */
export function registerDashboard<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  page: DashboardPage = loadDashboard(),
): void {
  app.get("/dashboard", async (_request, reply) => reply.headers(page.headers).send(page.html));
  app.get("/", async (_request, reply) => reply.redirect("/dashboard", 302));
}
