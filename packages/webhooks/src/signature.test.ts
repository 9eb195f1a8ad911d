import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signPayload, verifySignature } from "./signature.js";

const SECRET = "whsec_0123456789abcdef";
const BODY = '{"alert_id":"a1","org_id":"org_1","spend":"90.5"}';
const T = 1_767_225_600; // 2026-01-01T00:00:00Z

describe("signPayload", () => {
  it("matches an HMAC-SHA256 over '<t>.<raw body>' computed independently", () => {
    const expected = createHmac("sha256", SECRET).update(`${T}.${BODY}`, "utf8").digest("hex");
    expect(signPayload(SECRET, BODY, T)).toBe(`t=${T},v1=${expected}`);
  });

  it("signs bytes and the same text identically, and non-ASCII bodies as UTF-8", () => {
    const body = '{"entity":{"id":"usér"}}';
    expect(signPayload(SECRET, Buffer.from(body, "utf8"), T)).toBe(signPayload(SECRET, body, T));
    const expected = createHmac("sha256", SECRET)
      .update(Buffer.from(`${T}.${body}`, "utf8"))
      .digest("hex");
    expect(signPayload(SECRET, body, T)).toBe(`t=${T},v1=${expected}`);
  });

  it("refuses a timestamp that is not whole unix seconds", () => {
    expect(() => signPayload(SECRET, BODY, 1.5)).toThrow(RangeError);
    expect(() => signPayload(SECRET, BODY, -1)).toThrow(RangeError);
  });
});

describe("verifySignature", () => {
  const header = signPayload(SECRET, BODY, T);

  it("accepts its own signature within the tolerance, either side of now", () => {
    expect(verifySignature({ header, rawBody: BODY, secret: SECRET, now: T })).toEqual({ ok: true });
    expect(verifySignature({ header, rawBody: BODY, secret: SECRET, now: T + 300 })).toEqual({ ok: true });
    expect(verifySignature({ header, rawBody: BODY, secret: SECRET, now: T - 300 })).toEqual({ ok: true });
    expect(verifySignature({ header, rawBody: Buffer.from(BODY), secret: SECRET, now: T })).toEqual({ ok: true });
  });

  it("rejects a tampered body", () => {
    const tampered = BODY.replace("90.5", "9.05");
    expect(verifySignature({ header, rawBody: tampered, secret: SECRET, now: T })).toEqual({
      ok: false,
      reason: "signature_mismatch",
    });
    // Whitespace matters: the signature is over the raw bytes, not the parsed JSON.
    expect(verifySignature({ header, rawBody: `${BODY} `, secret: SECRET, now: T }).ok).toBe(false);
  });

  it("rejects a wrong secret", () => {
    expect(verifySignature({ header, rawBody: BODY, secret: `${SECRET}x`, now: T })).toEqual({
      ok: false,
      reason: "signature_mismatch",
    });
  });

  it("rejects a re-signed timestamp: t is part of what is signed", () => {
    const v1 = header.split("v1=")[1];
    expect(verifySignature({ header: `t=${T + 10},v1=${v1}`, rawBody: BODY, secret: SECRET, now: T })).toEqual({
      ok: false,
      reason: "signature_mismatch",
    });
  });

  it("rejects a stale (or too far future) timestamp, with a configurable tolerance", () => {
    expect(verifySignature({ header, rawBody: BODY, secret: SECRET, now: T + 301 })).toEqual({
      ok: false,
      reason: "stale_timestamp",
    });
    expect(verifySignature({ header, rawBody: BODY, secret: SECRET, now: T - 301 })).toEqual({
      ok: false,
      reason: "stale_timestamp",
    });
    expect(verifySignature({ header, rawBody: BODY, secret: SECRET, now: T + 30, toleranceSeconds: 10 }).ok).toBe(
      false,
    );
  });

  it("rejects malformed headers", () => {
    const v1 = header.split("v1=")[1]!;
    for (const bad of [
      undefined,
      null,
      "",
      "garbage",
      `v1=${v1}`,
      `t=${T}`,
      `t=abc,v1=${v1}`,
      `t=${T},v1=${v1.slice(2)}`,
      `t=${T},v1=${v1.toUpperCase()}`,
      `t=${T},t=${T},v1=${v1}`,
      `t=${T};v1=${v1}`,
    ]) {
      expect(verifySignature({ header: bad, rawBody: BODY, secret: SECRET, now: T }), String(bad)).toEqual({
        ok: false,
        reason: "malformed_header",
      });
    }
  });

  it("accepts any matching v1 among several (secret rotation) and ignores unknown schemes", () => {
    const other = signPayload("another-secret-0000", BODY, T).split("v1=")[1];
    const mine = header.split("v1=")[1];
    expect(
      verifySignature({ header: `t=${T},v1=${other},v1=${mine},v2=zzz`, rawBody: BODY, secret: SECRET, now: T }),
    ).toEqual({ ok: true });
  });
});
