import { describe, expect, it } from "vitest";
import { addressProblem, checkHost, type Lookup, safeLookup } from "./address.js";
import { webhookUrlProblem } from "./url.js";

describe("webhookUrlProblem", () => {
  it.each(["https://hooks.example.com/usage", "https://93.184.215.14:8443/a?b=c", "https://[2606:4700::1111]/hook"])(
    "accepts %s",
    (url) => {
      expect(webhookUrlProblem(url, false).ok).toBe(true);
    },
  );

  it.each([
    // The attacks of issue "roles and trust boundaries": cloud metadata, a private network, a local port.
    ["https://169.254.169.254/latest/meta-data", /linkLocal/],
    ["https://10.0.0.1:8443/x", /private/],
    ["http://127.0.0.1:22/x", /https/],
    ["https://127.0.0.1:22/x", /loopback/],
    ["https://[::1]/x", /loopback/],
    ["https://[::ffff:10.1.2.3]/x", /private/],
    ["https://[fd00:ec2::254]/x", /uniqueLocal/],
    ["https://100.64.0.1/x", /carrierGradeNat/],
    ["https://0.0.0.0/x", /unspecified/],
    ["https://224.0.0.1/x", /multicast/],
    ["http://example.com/hook", /https/],
    ["ftp://example.com/hook", /https/],
    ["https://user:pass@example.com/hook", /credentials/],
    ["not a url", /valid/],
    ["/relative/path", /valid/],
    ["", /non-empty/],
    [`https://example.com/${"a".repeat(2100)}`, /2048/],
  ])("refuses %s", (url, message) => {
    const r = webhookUrlProblem(url, false);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it("allows plain http and local hosts only with allowPrivate (local development)", () => {
    expect(webhookUrlProblem("http://127.0.0.1:8080/hook", true).ok).toBe(true);
    expect(webhookUrlProblem("https://10.0.0.1/hook", true).ok).toBe(true);
    expect(webhookUrlProblem("ftp://127.0.0.1/hook", true).ok).toBe(false);
  });

  it("refuses a non-string", () => {
    expect(webhookUrlProblem(42, false).ok).toBe(false);
    expect(webhookUrlProblem(undefined, false).ok).toBe(false);
  });
});

const resolver =
  (table: Record<string, string[]>): Lookup =>
  (host, _options, callback) => {
    const found = table[host];
    if (!found) return callback(Object.assign(new Error("ENOTFOUND"), { code: "ENOTFOUND" }), []);
    callback(
      null,
      found.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })),
    );
  };

describe("addresses", () => {
  it("knows public unicast from every other range", () => {
    expect(addressProblem("93.184.215.14")).toBeUndefined();
    expect(addressProblem("8.8.8.8")).toBeUndefined();
    expect(addressProblem("2606:4700::1111")).toBeUndefined();
    for (const a of ["127.0.0.1", "10.1.1.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1"]) {
      expect(addressProblem(a), a).toBeDefined();
    }
  });

  it("refuses a name when any of its addresses is not public, and one that does not resolve", async () => {
    const lookup = resolver({
      "hooks.example.com": ["93.184.215.14"],
      "mixed.example.com": ["93.184.215.14", "10.0.0.5"],
      "metadata.example.com": ["169.254.169.254"],
    });
    expect(await checkHost("hooks.example.com", lookup)).toEqual({ ok: true, addresses: ["93.184.215.14"] });
    expect((await checkHost("mixed.example.com", lookup)).ok).toBe(false);
    expect((await checkHost("metadata.example.com", lookup)).ok).toBe(false);
    expect((await checkHost("nowhere.example.com", lookup)).ok).toBe(false);
  });

  it("fails a connection whose name re-resolves to a private address (DNS rebinding)", async () => {
    let answer = ["93.184.215.14"];
    const lookup: Lookup = (_h, _o, cb) =>
      cb(
        null,
        answer.map((address) => ({ address, family: 4 })),
      );
    const connect = safeLookup(lookup);
    const resolve = () =>
      new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((r) =>
        connect("rebind.example.com", {}, (err, address) => r({ err, address })),
      );
    expect(await resolve()).toEqual({ err: null, address: "93.184.215.14" });
    answer = ["127.0.0.1"];
    const second = await resolve();
    expect(second.err?.code).toBe("EBLOCKEDADDRESS");
  });
});
