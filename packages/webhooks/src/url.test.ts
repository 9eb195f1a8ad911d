import { describe, expect, it } from "vitest";
import { isLoopbackHost, webhookUrlProblem } from "./url.js";

describe("webhookUrlProblem", () => {
  it.each([
    "https://hooks.example.com/usage",
    "https://203.0.113.7:8443/a?b=c",
    "http://127.0.0.1:8080/hook",
    "http://127.255.1.2/hook",
    "http://127.1/hook",
    "http://localhost:3000/hook",
    "http://LOCALHOST/hook",
    "http://[::1]:9000/hook",
  ])("accepts %s", (url) => {
    expect(webhookUrlProblem(url).ok).toBe(true);
  });

  it.each([
    ["http://example.com/hook", /https/],
    ["http://10.0.0.1/hook", /loopback/],
    ["http://128.0.0.1/hook", /loopback/],
    ["http://localhost.example.com/hook", /loopback/],
    ["http://127.0.0.1.nip.io/hook", /loopback/],
    ["http://[::2]/hook", /loopback/],
    ["ftp://127.0.0.1/hook", /https/],
    ["https://user:pass@example.com/hook", /credentials/],
    ["not a url", /valid/],
    ["/relative/path", /valid/],
    ["", /non-empty/],
    [`https://example.com/${"a".repeat(2100)}`, /2048/],
  ])("refuses %s", (url, message) => {
    const r = webhookUrlProblem(url);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it("refuses a non-string", () => {
    expect(webhookUrlProblem(42).ok).toBe(false);
    expect(webhookUrlProblem(undefined).ok).toBe(false);
  });
});

describe("isLoopbackHost", () => {
  it("knows 127.0.0.0/8, ::1 and localhost only", () => {
    expect(isLoopbackHost("127.0.0.1")).toBe(true);
    expect(isLoopbackHost("127.0.0.255")).toBe(true);
    expect(isLoopbackHost("localhost")).toBe(true);
    expect(isLoopbackHost("[::1]")).toBe(true);
    expect(isLoopbackHost("126.0.0.1")).toBe(false);
    expect(isLoopbackHost("0.0.0.0")).toBe(false);
    expect(isLoopbackHost("[::]")).toBe(false);
  });
});
