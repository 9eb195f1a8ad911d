import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createProgress, formatBytes, formatRate, type ProgressStream, waitingLine, whileWaiting } from "./progress.js";

function fakeStream(isTTY: boolean, columns = 80): ProgressStream & { chunks: string[]; text: () => string } {
  const chunks: string[] = [];
  return {
    isTTY,
    columns,
    chunks,
    write(chunk: string) {
      chunks.push(chunk);
      return true;
    },
    text: () => chunks.join(""),
  };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("progress line", () => {
  it("writes nothing when the stream is not a terminal", async () => {
    const written: string[] = [];
    // A pipe (isTTY false) and a stream without isTTY at all (a file).
    for (const stream of [fakeStream(false), { write: (c: string) => written.push(c) }]) {
      const progress = createProgress({ stream });
      expect(progress.active).toBe(false);
      progress.update("read 1 lines");
      progress.track(() => "read 2 lines");
      vi.advanceTimersByTime(5000);
      progress.clear();
      progress.done("produced 2 events");
      if ("chunks" in stream) expect(stream.chunks).toEqual([]);
    }
    const answer = whileWaiting(() => new Promise<string>((resolve) => setTimeout(() => resolve("answer"), 5000)), {
      stream: { write: (c: string) => written.push(c) },
    });
    await vi.advanceTimersByTimeAsync(5000);
    expect(await answer).toBe("answer");
    expect(written).toEqual([]);
  });

  it("rewrites one line in place on a terminal and finishes with a newline-terminated summary", () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 150 });
    expect(progress.active).toBe(true);
    progress.update("read 1 lines");
    vi.advanceTimersByTime(200);
    progress.update("read 2 lines");
    expect(stream.chunks).toEqual(["\r\x1b[2Kread 1 lines", "\r\x1b[2Kread 2 lines"]);
    expect(stream.text()).not.toContain("\n");
    progress.done("produced 2 events");
    expect(stream.chunks.slice(2)).toEqual(["\r\x1b[2K", "produced 2 events\n"]);
    // Finished: later calls draw nothing.
    progress.update("read 3 lines");
    progress.done("again");
    vi.advanceTimersByTime(1000);
    expect(stream.chunks).toHaveLength(4);
  });

  it("throttles: at most one draw per interval, the latest update drawn when the interval ends", () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 150 });
    for (let i = 1; i <= 100; i++) progress.update(`read ${i} lines`);
    expect(stream.chunks).toEqual(["\r\x1b[2Kread 1 lines"]);
    vi.advanceTimersByTime(149);
    expect(stream.chunks).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(stream.chunks).toEqual(["\r\x1b[2Kread 1 lines", "\r\x1b[2Kread 100 lines"]);
    // A render function runs only when drawn, and an unchanged line is not written again.
    const render = vi.fn(() => "read 100 lines");
    progress.update(render);
    progress.update(render);
    expect(render).not.toHaveBeenCalled();
    vi.advanceTimersByTime(150);
    expect(render).toHaveBeenCalledTimes(1);
    expect(stream.chunks).toHaveLength(2);
    progress.done();
  });

  it("tracks a render function on a timer until done, and never writes more often than the interval", () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 200 });
    let n = 0;
    progress.track(() => `published ${++n}`, 50);
    vi.advanceTimersByTime(1000);
    expect(stream.chunks.length).toBeGreaterThanOrEqual(5);
    expect(stream.chunks.length).toBeLessThanOrEqual(6);
    expect(stream.chunks.every((c) => c.startsWith("\r"))).toBe(true);
    progress.done();
    const count = stream.chunks.length;
    vi.advanceTimersByTime(1000);
    expect(stream.chunks).toHaveLength(count);
    expect(stream.chunks.at(-1)).toBe("\r\x1b[2K");
  });

  it("clear() erases the line before other output; the next update draws it again", () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 100 });
    progress.update("read 5 lines");
    progress.clear();
    progress.clear();
    stream.write('{"line":5,"code":"invalid_encoding"}\n');
    vi.advanceTimersByTime(100);
    progress.update("read 5 lines");
    expect(stream.text()).toBe(
      '\r\x1b[2Kread 5 lines\r\x1b[2K{"line":5,"code":"invalid_encoding"}\n\r\x1b[2Kread 5 lines',
    );
    progress.done();
  });

  it("cuts a line longer than the terminal is wide, so it never wraps", () => {
    const stream = fakeStream(true, 20);
    const progress = createProgress({ stream });
    progress.update("x".repeat(50));
    expect(stream.chunks[0]).toBe(`\r\x1b[2K${"x".repeat(18)}…`);
    progress.done();
  });

  it("whileWaiting shows the seconds waited after the first one and erases the line when the answer arrives", async () => {
    const stream = fakeStream(true);
    const answer = whileWaiting(() => new Promise<number>((resolve) => setTimeout(() => resolve(42), 2600)), {
      stream,
    });
    await vi.advanceTimersByTimeAsync(900);
    expect(stream.chunks).toEqual([]);
    await vi.advanceTimersByTimeAsync(1700);
    expect(await answer).toBe(42);
    expect(stream.chunks).toEqual([
      "\r\x1b[2Kwaiting for the API… 1 s",
      "\r\x1b[2Kwaiting for the API… 2 s",
      "\r\x1b[2K",
    ]);
  });

  it("whileWaiting erases the line before a failure propagates", async () => {
    const stream = fakeStream(true);
    const answer = whileWaiting(
      () => new Promise((_, reject) => setTimeout(() => reject(new Error("HTTP 500")), 1500)),
      { stream, label: "finalizing" },
    );
    const settled = expect(answer).rejects.toThrow("HTTP 500");
    await vi.advanceTimersByTimeAsync(1500);
    await settled;
    expect(stream.chunks).toEqual(["\r\x1b[2Kfinalizing… 1 s", "\r\x1b[2K"]);
  });

  it("formats bytes, rates and the waiting line", () => {
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1234567)).toBe("1.2 MB");
    expect(formatBytes(5_000_000_000)).toBe("5.0 GB");
    expect(formatRate(500, 250)).toBe("2000/s");
    expect(formatRate(5, 0)).toBe("–/s");
    expect(waitingLine(999)).toBe("");
    expect(waitingLine(3500)).toBe("waiting for the API… 3 s");
  });
});
