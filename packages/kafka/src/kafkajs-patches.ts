/**
 * One fix to kafkajs 2.2 (applied once, when this package is loaded, to the module kafkajs itself uses).
 *
 * A stopping consumer can spin forever: `Runner.stop()` clears `running` and stops the fetchers it knows, but when
 * the set of brokers changes at that moment (a broker killed or restarted), the fetch manager catches the rebalance
 * error of a fetcher and creates new fetchers after the stop. Each then calls `Runner.fetch`, which answers `[]` at
 * once because the consumer is not running, and loops: an endless chain of resolved promises that never yields to
 * the timers (one core at 100 %, every timer and socket of the process starved). Seen in the scale-out scenario: a
 * test process stuck after its last assertion (kafkajs issues 1384 and 1387 describe the same loop when no broker is
 * left). Here a fetch of a consumer that is not running fails instead: the fetcher ends, the fetch manager gives the
 * error to the runner's retrier, which sees the consumer stopped and returns, as a clean stop does.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface RunnerLike {
  running: boolean;
  fetch(nodeId: number): Promise<unknown[]>;
}

/** kafkajs's consumer runner class (kafkajs has no `exports` map: its sources are importable). */
export const KafkajsRunner = require("kafkajs/src/consumer/runner.js") as { prototype: RunnerLike };

const PATCHED = Symbol.for("usage.kafkajs.runner-fetch-patched");

export class ConsumerStoppedError extends Error {
  override readonly name = "ConsumerStoppedError";
}

const proto = KafkajsRunner.prototype as RunnerLike & { [PATCHED]?: true };
if (!proto[PATCHED]) {
  const fetch = proto.fetch;
  proto.fetch = async function patchedFetch(this: RunnerLike, nodeId: number) {
    if (!this.running) throw new ConsumerStoppedError("consumer stopped: no more fetches");
    return fetch.call(this, nodeId);
  };
  proto[PATCHED] = true;
}
