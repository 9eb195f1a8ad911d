/**
 * Group commit: `commit(item)` resolves once a call of `run` holding the item has succeeded (with the number of
 * items that call held), and rejects with its error when it failed. One `run` at a time; the items handed over while
 * one runs go together into the next. The first run waits for the event loop's current turn to end, so the batches
 * of one fetch (which kafkajs starts side by side) go together from the start. Pricing commits one Kafka transaction
 * per group, the aggregator writes one insert per table per group.
 */
export function createGroupCommit<T>(run: (group: T[]) => Promise<void>): (item: T) => Promise<number> {
  let waiting: { item: T; resolve: (size: number) => void; reject: (err: unknown) => void }[] = [];
  let running = false;
  async function drain(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    while (waiting.length > 0) {
      const group = waiting;
      waiting = [];
      try {
        await run(group.map((w) => w.item));
        for (const w of group) w.resolve(group.length);
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    running = false;
  }
  return (item) =>
    new Promise<number>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      if (!running) {
        running = true;
        void drain();
      }
    });
}
