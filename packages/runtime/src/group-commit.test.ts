import { describe, expect, it } from "vitest";
import { createGroupCommit } from "./group-commit.js";

/** A run the test settles by hand: each call records its group and waits for `settle`. */
function controlledRuns() {
  const groups: number[][] = [];
  const settlers: { ok: () => void; fail: (err: Error) => void }[] = [];
  const run = (group: number[]) =>
    new Promise<void>((ok, fail) => {
      groups.push(group);
      settlers.push({ ok, fail });
    });
  return { groups, settlers, run };
}
const turn = () => new Promise((r) => setImmediate(r));

describe("createGroupCommit", () => {
  it("puts what is handed over in one turn together, and what comes during a run into the next run", async () => {
    const { groups, settlers, run } = controlledRuns();
    const commit = createGroupCommit(run);
    const done: number[] = [];
    const sizes: number[] = [];
    const first = [1, 2, 3].map((n) =>
      commit(n).then((size) => {
        done.push(n);
        sizes.push(size);
      }),
    );
    await turn();
    expect(groups).toEqual([[1, 2, 3]]);
    const second = [4, 5].map((n) => commit(n).then(() => done.push(n)));
    await turn();
    // One run at a time: 4 and 5 wait for the first to end.
    expect(groups).toEqual([[1, 2, 3]]);
    settlers[0]!.ok();
    await Promise.all(first);
    await turn();
    expect(done).toEqual([1, 2, 3]);
    expect(sizes).toEqual([3, 3, 3]);
    expect(groups).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    settlers[1]!.ok();
    await Promise.all(second);
    expect(done).toEqual([1, 2, 3, 4, 5]);
  });

  it("fails every item of a failed run with its error, and goes on with the next", async () => {
    const { groups, settlers, run } = controlledRuns();
    const commit = createGroupCommit(run);
    const outcomes = [1, 2].map((n) =>
      commit(n).then(
        () => "ok",
        (err: Error) => err.message,
      ),
    );
    await turn();
    const later = commit(3);
    settlers[0]!.fail(new Error("fenced"));
    expect(await Promise.all(outcomes)).toEqual(["fenced", "fenced"]);
    await turn();
    expect(groups).toEqual([[1, 2], [3]]);
    settlers[1]!.ok();
    // Resolved with the size of the run that held it.
    await expect(later).resolves.toBe(1);
  });

  it("starts afresh after it has gone idle", async () => {
    const seen: number[][] = [];
    const commit = createGroupCommit(async (group: number[]) => {
      seen.push(group);
    });
    await commit(1);
    await commit(2);
    await Promise.all([commit(3), commit(4)]);
    expect(seen).toEqual([[1], [2], [3, 4]]);
  });
});
