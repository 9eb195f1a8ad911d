import { describe, expect, it } from "vitest";
import { csvField, neutralizeFormula } from "./analytics-routes.js";

describe("CSV cells", () => {
  it.each([
    ['=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'],
    ["+1+1", "'+1+1"],
    ["-2+3", "'-2+3"],
    ["@SUM(A1)", "'@SUM(A1)"],
    ["\tx", "'\tx"],
    ["alice@example.com", "alice@example.com"],
    ["claude-opus-4-5", "claude-opus-4-5"],
  ])("neutralizes %j as %j", (cell, want) => {
    expect(neutralizeFormula(cell)).toBe(want);
  });

  it("quotes what RFC 4180 needs quoted, after neutralizing", () => {
    expect(csvField(neutralizeFormula('=1,"2"'))).toBe(`"'=1,""2"""`);
    expect(csvField("plain")).toBe("plain");
  });
});
