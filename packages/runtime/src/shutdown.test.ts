import { describe, expect, it } from "vitest";
import { createShutdown } from "./shutdown.js";

describe("createShutdown", () => {
  it("runs steps once, in order, with addFirst steps ahead", async () => {
    const order: string[] = [];
    const shutdown = createShutdown({ timeoutMs: 1000 });
    shutdown.add("consumer", async () => void order.push("consumer"));
    shutdown.add("clients", async () => void order.push("clients"));
    shutdown.addFirst("intake", async () => void order.push("intake"));
    await Promise.all([shutdown.run("a"), shutdown.run("b")]);
    expect(order).toEqual(["intake", "consumer", "clients"]);
    expect(shutdown.started).toBe(true);
  });

  it("keeps going after a failing step and gives up at the timeout", async () => {
    const order: string[] = [];
    const shutdown = createShutdown({ timeoutMs: 50 });
    shutdown.add("fails", async () => {
      throw new Error("boom");
    });
    shutdown.add("next", async () => void order.push("next"));
    shutdown.add("hangs", () => new Promise<void>(() => undefined));
    const t = Date.now();
    await shutdown.run("test");
    expect(order).toEqual(["next"]);
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it("runs final steps after the others, and even when a step hangs past the timeout", async () => {
    const order: string[] = [];
    const shutdown = createShutdown({ timeoutMs: 50 });
    shutdown.addFinal("broker", async () => void order.push("broker"));
    shutdown.add("consumer", async () => void order.push("consumer"));
    await shutdown.run("first");
    expect(order).toEqual(["consumer", "broker"]);

    const hung: string[] = [];
    const stuck = createShutdown({ timeoutMs: 50 });
    stuck.add("hangs", () => new Promise<void>(() => undefined));
    stuck.addFinal("fails", async () => {
      throw new Error("boom");
    });
    stuck.addFinal("broker", async () => void hung.push("broker"));
    await stuck.run("second");
    expect(hung).toEqual(["broker"]);
  });
});
