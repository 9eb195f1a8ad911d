/**
 * Ordered, idempotent shutdown: steps run in registration order (stop intake → drain consumers →
 * flush producers and writers → close clients), each bounded by the overall timeout. Calling it twice
 * returns the same promise.
 */
export interface Shutdown {
  add(name: string, step: () => Promise<void>): void;
  /** Runs before every step added so far: intake started after the services (a feeder) stops first. */
  addFirst(name: string, step: () => Promise<void>): void;
  /**
   * Runs once the other steps are done or the timeout has passed, and is awaited whatever they did: for what must
   * not outlive the process (the broker it started), which a hung step must not keep from being released.
   */
  addFinal(name: string, step: () => Promise<void>): void;
  run(reason: string): Promise<void>;
  readonly started: boolean;
}

export function createShutdown(options: { timeoutMs: number; log?: (msg: string) => void }): Shutdown {
  const steps: { name: string; step: () => Promise<void> }[] = [];
  const finals: { name: string; step: () => Promise<void> }[] = [];
  let running: Promise<void> | undefined;
  return {
    add(name, step) {
      steps.push({ name, step });
    },
    addFirst(name, step) {
      steps.unshift({ name, step });
    },
    addFinal(name, step) {
      finals.push({ name, step });
    },
    get started() {
      return running !== undefined;
    },
    run(reason) {
      if (running) return running;
      options.log?.(`shutting down (${reason})`);
      const runAll = async (list: typeof steps) => {
        for (const { name, step } of list) {
          try {
            await step();
          } catch (err) {
            options.log?.(`shutdown step ${name} failed: ${(err as Error).message}`);
          }
        }
      };
      const all = runAll(steps);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          options.log?.(`shutdown did not finish within ${options.timeoutMs} ms; giving up`);
          resolve();
        }, options.timeoutMs);
        timer.unref();
      });
      running = Promise.race([all, timeout])
        .finally(() => clearTimeout(timer))
        .then(() => runAll(finals));
      return running;
    },
  };
}
