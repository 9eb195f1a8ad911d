import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { loadRateCard, parseRateCard, type RateCard, RateCardError, versionAt } from "./rate-card.js";

const OPUS = { input: "5", output: "25", cache_write: "6.25", cache_read: "0.50" };

function card(models: Record<string, unknown> = { "claude-opus-4-5": OPUS }, extra: Record<string, unknown> = {}) {
  return { versions: [{ version: "v1", effective_from: "2025-11-01T00:00:00Z", models, ...extra }] };
}

/** The issues a bad card is rejected with. */
function issuesOf(json: unknown): readonly string[] {
  try {
    parseRateCard(json);
  } catch (error) {
    expect(error).toBeInstanceOf(RateCardError);
    return (error as RateCardError).issues;
  }
  throw new Error("expected the rate card to be rejected");
}

describe("default rate card", () => {
  const sonnet = {
    input: "3",
    output: "15",
    cache_write: "3.75",
    cache_read: "0.30",
    long_context: { input: "6", output: "22.50", cache_write: "7.50", cache_read: "0.60" },
  };
  const opus = { input: "15", output: "75", cache_write: "18.75", cache_read: "1.50" };
  // SPEC §4, transcribed independently of rate-cards/default.json.
  const spec = {
    "claude-opus-4-5": OPUS,
    "claude-haiku-4-5": { input: "1", output: "5", cache_write: "1.25", cache_read: "0.10" },
    "claude-sonnet-4-5": sonnet,
    "claude-opus-4-1": opus,
    "claude-sonnet-4": sonnet,
    "claude-opus-4": opus,
    "claude-3-7-sonnet": { input: "3", output: "15", cache_write: "3.75", cache_read: "0.30" },
    "claude-3-opus": opus,
    "claude-3-5-haiku": { input: "0.80", output: "4", cache_write: "1", cache_read: "0.08" },
  };

  it("holds exactly the nine models and rates of SPEC §4", () => {
    const loaded = loadRateCard();
    expect(loaded.versions).toHaveLength(1);
    const version = loaded.versions[0]!;
    expect(version.version).toBe("2025-11-01");
    expect(version.effective_from_ms).toBe(Date.UTC(2025, 10, 1));
    expect({ ...version.models }).toEqual(spec);
  });

  it("gives long-context rates only to claude-sonnet-4-5 and claude-sonnet-4", () => {
    const models = loadRateCard().versions[0]!.models;
    const withLong = Object.keys(models).filter((id) => models[id]?.long_context !== undefined);
    expect(withLong.sort()).toEqual(["claude-sonnet-4", "claude-sonnet-4-5"]);
  });

  it("has no prototype keys in its model map", () => {
    const models = loadRateCard().versions[0]!.models;
    expect(models.toString).toBeUndefined();
    expect(models.constructor).toBeUndefined();
  });
});

describe("parseRateCard", () => {
  it("accepts rates with up to 6 decimal places and a long_context bracket", () => {
    const parsed = parseRateCard(
      card({
        "claude-x": {
          input: "0.000001",
          output: "123.456789",
          cache_write: "0",
          cache_read: "00.5",
          long_context: OPUS,
        },
      }),
    );
    expect(parsed.versions[0]!.models["claude-x"]?.output).toBe("123.456789");
    expect(parsed.versions[0]!.models["claude-x"]?.long_context).toEqual(OPUS);
  });

  it("names the bad path of a rate that is not a non-negative decimal string", () => {
    const versions = [
      card().versions[0],
      { version: "v2", effective_from: "2026-01-01T00:00:00Z", models: { "claude-x": { ...OPUS, input: "abc" } } },
    ];
    expect(issuesOf({ versions })).toEqual([
      "versions[1].models.claude-x.input: expected a non-negative decimal string",
    ]);
    expect(() => parseRateCard({ versions })).toThrow(
      "invalid rate card: versions[1].models.claude-x.input: expected a non-negative decimal string",
    );
    for (const bad of ["-1", "1e-3", "", ".5", "5.", " 5", "1,5", 5, null]) {
      expect(issuesOf(card({ m: { ...OPUS, output: bad } })), String(bad)).toEqual([
        "versions[0].models.m.output: expected a non-negative decimal string",
      ]);
    }
  });

  it("rejects a rate with more than 6 decimal places", () => {
    expect(issuesOf(card({ m: { ...OPUS, cache_read: "0.0000001" } }))).toEqual([
      "versions[0].models.m.cache_read: expected at most 6 decimal places",
    ]);
    expect(issuesOf(card({ m: { ...OPUS, long_context: { ...OPUS, cache_write: "7.5000000" } } }))).toEqual([
      "versions[0].models.m.long_context.cache_write: expected at most 6 decimal places",
    ]);
  });

  it("rejects missing and misspelt rate keys", () => {
    const { cache_read: _omitted, ...missing } = OPUS;
    expect(issuesOf(card({ m: missing }))).toEqual(["versions[0].models.m.cache_read: Required"]);
    const misspelt = issuesOf(card({ m: { ...OPUS, cache_wirte: "1" } }));
    expect(misspelt).toHaveLength(1);
    expect(misspelt[0]).toMatch(/^versions\[0\]\.models\.m: Unrecognized key\(s\) in object: 'cache_wirte'/);
  });

  it("rejects a dated or malformed model id as a key", () => {
    expect(issuesOf(card({ "claude-opus-4-5-20251101": OPUS }))).toEqual([
      "versions[0].models.claude-opus-4-5-20251101: expected a base model id without a -YYYYMMDD suffix",
    ]);
    expect(issuesOf(card({ "Claude Opus": OPUS }))[0]).toMatch(
      /^versions\[0\]\.models\.Claude Opus: expected a model id/,
    );
    expect(issuesOf(card({ __proto__x: OPUS }))[0]).toMatch(/expected a model id/);
    // JSON.parse makes "__proto__" an own key; it must be rejected, not become the models' prototype.
    const proto = JSON.parse(`{"versions":[{"version":"v1","effective_from":"2025-11-01T00:00:00Z",
      "models":{"__proto__":${JSON.stringify(OPUS)}}}]}`);
    expect(issuesOf(proto)[0]).toMatch(/^versions\[0\]\.models\.__proto__: expected a model id/);
  });

  it("rejects bad versions and effective_from values", () => {
    expect(issuesOf({ versions: [] })).toEqual(["versions: expected at least one version"]);
    expect(issuesOf({})).toEqual(["versions: Required"]);
    expect(issuesOf(null)).toEqual(["(root): Expected object, received null"]);
    expect(issuesOf(card(undefined, { version: "" }))).toEqual(["versions[0].version: expected a non-empty string"]);
    const notUtc = ["2025-11-01", "2025-11-01T00:00:00+01:00", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z"];
    for (const bad of [...notUtc, "2025-11-01T24:00:00Z", "2025-11-01T00:00:00.0001Z", "yesterday", 20251101]) {
      expect(issuesOf(card(undefined, { effective_from: bad })), String(bad)).toEqual([
        "versions[0].effective_from: expected an RFC 3339 UTC timestamp such as 2025-11-01T00:00:00Z",
      ]);
    }
  });

  it("reports every problem at once", () => {
    const issues = issuesOf(card({ a: { ...OPUS, input: "x" }, b: { ...OPUS, output: "1.1234567" } }));
    expect(issues).toEqual([
      "versions[0].models.a.input: expected a non-negative decimal string",
      "versions[0].models.b.output: expected at most 6 decimal places",
    ]);
  });

  it("rejects duplicate version names and duplicate effective_from instants", () => {
    const v = (version: string, effective_from: string) => ({ version, effective_from, models: {} });
    expect(issuesOf({ versions: [v("a", "2025-01-01T00:00:00Z"), v("a", "2025-02-01T00:00:00Z")] })).toEqual([
      'versions[1].version: duplicate version "a" (also versions[0])',
    ]);
    // Same instant written two ways is still the same effective_from.
    expect(issuesOf({ versions: [v("a", "2025-01-01T00:00:00Z"), v("b", "2025-01-01T00:00:00.000Z")] })).toEqual([
      "versions[1].effective_from: duplicate effective_from 2025-01-01T00:00:00.000Z (also versions[0])",
    ]);
  });

  it("sorts versions by effective_from", () => {
    const v = (version: string, effective_from: string) => ({ version, effective_from, models: {} });
    const parsed = parseRateCard({
      versions: [v("c", "2026-03-01T00:00:00Z"), v("a", "2025-01-01T00:00:00Z"), v("b", "2025-06-01T12:30:00.5Z")],
    });
    expect(parsed.versions.map((x) => x.version)).toEqual(["a", "b", "c"]);
    expect(parsed.versions[1]!.effective_from_ms).toBe(Date.UTC(2025, 5, 1, 12, 30, 0, 500));
  });
});

describe("versionAt", () => {
  const twoVersions: RateCard = parseRateCard({
    versions: [
      { version: "v2", effective_from: "2026-01-01T00:00:00Z", models: {} },
      { version: "v1", effective_from: "2025-11-01T00:00:00Z", models: {} },
    ],
  });
  const at = (iso: string) => versionAt(twoVersions, Date.parse(iso))?.version;

  it("picks the newest version in force, inclusive of effective_from", () => {
    expect(at("2025-10-31T23:59:59.999Z")).toBeUndefined();
    expect(at("2025-11-01T00:00:00.000Z")).toBe("v1");
    expect(at("2025-12-31T23:59:59.999Z")).toBe("v1");
    expect(at("2026-01-01T00:00:00.000Z")).toBe("v2");
    expect(at("2030-01-01T00:00:00.000Z")).toBe("v2");
  });

  it("finds nothing for a time that is not a number", () => {
    expect(versionAt(twoVersions, Number.NaN)).toBeUndefined();
  });
});

describe("loadRateCard", () => {
  const dir = mkdtempSync(join(tmpdir(), "rate-card-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a file by path or file URL", () => {
    const file = join(dir, "ok.json");
    writeFileSync(file, JSON.stringify(card()));
    expect(loadRateCard(file).versions[0]!.version).toBe("v1");
    expect(loadRateCard(pathToFileURL(file)).versions[0]!.models["claude-opus-4-5"]).toEqual(OPUS);
  });

  it("names the file when it cannot be read, parsed or validated", () => {
    const missing = join(dir, "missing.json");
    expect(() => loadRateCard(missing)).toThrow(RateCardError);
    expect(() => loadRateCard(missing)).toThrow(`invalid rate card ${missing}: cannot read file`);

    const broken = join(dir, "broken.json");
    writeFileSync(broken, "{ not json");
    expect(() => loadRateCard(broken)).toThrow(`invalid rate card ${broken}: not valid JSON`);

    const invalid = join(dir, "invalid.json");
    writeFileSync(invalid, JSON.stringify(card({ m: { ...OPUS, input: "-5" } })));
    expect(() => loadRateCard(pathToFileURL(invalid))).toThrow(
      `invalid rate card ${invalid}: versions[0].models.m.input: expected a non-negative decimal string`,
    );
  });
});
