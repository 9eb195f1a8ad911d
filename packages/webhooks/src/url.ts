/**
 * Which webhook URLs an org may register (SPEC §7): HTTPS anywhere; plain HTTP only to a loopback host
 * (127.0.0.0/8, ::1, localhost), for local development and tests. Credentials in the URL are refused: URLs end up
 * in configuration listings, secrets belong in the webhook secret.
 */
export type WebhookUrlCheck = { ok: true; url: URL } | { ok: false; message: string };

const MAX_URL_LENGTH = 2048;

export function webhookUrlProblem(raw: unknown): WebhookUrlCheck {
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
  if (url.protocol === "https:") return { ok: true, url };
  if (url.protocol === "http:") {
    if (isLoopbackHost(url.hostname)) return { ok: true, url };
    return { ok: false, message: "url must use https (plain http is allowed only to a loopback host)" };
  }
  return { ok: false, message: `url must use https, not ${url.protocol.replace(/:$/, "")}` };
}

/** `hostname` as the WHATWG URL parser leaves it: lower-cased, IPv4 normalised to dotted quad, IPv6 in brackets. */
export function isLoopbackHost(hostname: string): boolean {
  if (hostname === "localhost" || hostname === "[::1]") return true;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  return m !== null && m[1] === "127" && m.slice(2).every((o) => Number(o) <= 255);
}
