/**
 * Which webhook URLs an org may register (SPEC §7, §10): HTTPS to a public host; with `allowPrivate`
 * (USAGE_WEBHOOK_ALLOW_PRIVATE=true, local development and tests) also plain HTTP and local addresses. A host
 * written as an IP address is checked here; a name is resolved and checked by address.ts (checkHost at
 * registration, safeLookup at each delivery). Credentials in the URL are refused: URLs end up in configuration
 * listings, secrets belong in the webhook secret.
 */
import ipaddr from "ipaddr.js";
import { addressProblem } from "./address.js";

export type WebhookUrlCheck = { ok: true; url: URL } | { ok: false; message: string };

const MAX_URL_LENGTH = 2048;

export function webhookUrlProblem(raw: unknown, allowPrivate: boolean): WebhookUrlCheck {
  if (typeof raw !== "string" || raw.length === 0) return { ok: false, message: "url must be a non-empty string" };
  if (raw.length > MAX_URL_LENGTH) return { ok: false, message: `url must be at most ${MAX_URL_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, message: "url is not a valid absolute URL" };
  }
  if (url.username !== "" || url.password !== "") {
    return { ok: false, message: "url must not contain credentials" };
  }
  if (url.protocol !== "https:" && !(allowPrivate && url.protocol === "http:")) {
    return {
      ok: false,
      message:
        url.protocol === "http:"
          ? "url must use https (plain http only with USAGE_WEBHOOK_ALLOW_PRIVATE=true, for local development)"
          : `url must use https, not ${url.protocol.replace(/:$/, "")}`,
    };
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!allowPrivate && ipaddr.isValid(host)) {
    const problem = addressProblem(host);
    if (problem) return { ok: false, message: `url host ${problem}; webhooks must reach public hosts` };
  }
  return { ok: true, url };
}
