import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";

/** Lines of a stream (JSON lines input), skipping blank ones, with their 1-based line numbers. */
export async function* readLines(input: Readable): AsyncGenerator<{ line: string; number: number }> {
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let number = 0;
  for await (const line of rl) {
    number++;
    if (line.trim().length > 0) yield { line, number };
  }
}

/** A buffered line writer: many small writes become few large ones, honouring back-pressure. */
export function createLineWriter(output: Writable, highWater = 1 << 16) {
  let chunks: string[] = [];
  let size = 0;
  async function flush(): Promise<void> {
    if (chunks.length === 0) return;
    const text = chunks.join("");
    chunks = [];
    size = 0;
    if (!output.write(text)) await new Promise<void>((resolve) => output.once("drain", () => resolve()));
  }
  return {
    async write(line: string): Promise<void> {
      chunks.push(line, "\n");
      size += line.length + 1;
      if (size >= highWater) await flush();
    },
    flush,
  };
}
