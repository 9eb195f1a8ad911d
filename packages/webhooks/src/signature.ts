/**
 * Webhook signatures (SPEC §7): `X-Usage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
 *
 * The timestamp is signed with the body, so a captured request cannot be replayed after the tolerance window, and
 * a retry carries a fresh signature. A receiver verifies over the raw bytes it received (before any JSON parsing)
 * and deduplicates on the alert id (`X-Usage-Alert-Id`, also in the body): a retried alert is the same alert.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "X-Usage-Signature";
export const ALERT_ID_HEADER = "X-Usage-Alert-Id";

const DEFAULT_TOLERANCE_SECONDS = 300;

function hmacHex(secret: string, t: number, rawBody: string | Uint8Array): string {
  const mac = createHmac("sha256", secret);
  mac.update(`${t}.`);
  mac.update(rawBody);
  return mac.digest("hex");
}

/**
 * The `X-Usage-Signature` header value for a body sent at `unixSeconds`: one `v1=` per secret, so while a secret is
 * rotated with an overlap a receiver that knows either one verifies the POST.
 */
export function signPayload(
  secret: string | readonly string[],
  rawBody: string | Uint8Array,
  unixSeconds: number,
): string {
  if (!Number.isSafeInteger(unixSeconds) || unixSeconds < 0) {
    throw new RangeError("unixSeconds must be a non-negative whole number of seconds");
  }
  const secrets = typeof secret === "string" ? [secret] : secret;
  if (secrets.length === 0) throw new RangeError("at least one secret signs a payload");
  return `t=${unixSeconds},${secrets.map((s) => `v1=${hmacHex(s, unixSeconds, rawBody)}`).join(",")}`;
}

export type VerifyFailure = "malformed_header" | "stale_timestamp" | "signature_mismatch";
export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure };

/**
 * Checks a signature header against the raw body. Several `v1=` entries are accepted (any one matching passes),
 * so a sender may sign with an old and a new secret while a secret is rotated. `now` is in unix seconds.
 */
export function verifySignature(options: {
  header: string | null | undefined;
  rawBody: string | Uint8Array;
  secret: string;
  toleranceSeconds?: number;
  now?: number;
}): VerifyResult {
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  let t: number | undefined;
  const candidates: string[] = [];
  for (const part of (options.header ?? "").split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return { ok: false, reason: "malformed_header" };
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") {
      if (t !== undefined || !/^\d{1,12}$/.test(value)) return { ok: false, reason: "malformed_header" };
      t = Number(value);
    } else if (key === "v1") {
      if (!/^[0-9a-f]{64}$/.test(value)) return { ok: false, reason: "malformed_header" };
      candidates.push(value);
    }
    // Other keys (a future v2) are ignored, so a receiver keeps working while the sender adds a scheme.
  }
  if (t === undefined || candidates.length === 0) return { ok: false, reason: "malformed_header" };
  if (Math.abs(now - t) > tolerance) return { ok: false, reason: "stale_timestamp" };
  const expected = Buffer.from(hmacHex(options.secret, t, options.rawBody), "hex");
  let match = false;
  for (const c of candidates) {
    // Every candidate is compared in constant time; the loop does not stop early on a match.
    if (timingSafeEqual(expected, Buffer.from(c, "hex"))) match = true;
  }
  return match ? { ok: true } : { ok: false, reason: "signature_mismatch" };
}
