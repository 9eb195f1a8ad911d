import { describe, expect, it } from "vitest";
import { ConsumerStoppedError, KafkajsRunner } from "./kafkajs-patches.js";

describe("kafkajs runner patch", () => {
  it("fails a fetch of a consumer that is not running (no endless chain of empty fetches)", async () => {
    const stopped = Object.assign(Object.create(KafkajsRunner.prototype), { running: false });
    await expect(stopped.fetch(1)).rejects.toBeInstanceOf(ConsumerStoppedError);
  });

  it("lets a running consumer fetch as before", async () => {
    const batches = [{ topic: "t", partition: 0 }];
    const running = Object.assign(Object.create(KafkajsRunner.prototype), {
      running: true,
      instrumentationEmitter: { emit: () => undefined },
      consumerGroup: { fetch: async () => batches },
      heartbeat: async () => undefined,
    });
    await expect(running.fetch(1)).resolves.toBe(batches);
  });
});
