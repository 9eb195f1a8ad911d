import { aggregatorEnvSchema } from "@usage/aggregator";
import { decode, type PricedUsageEvent, pricedUsageEventV1 } from "@usage/events";
import { createBatchConsumer, TOPICS } from "@usage/kafka";
import { Money } from "@usage/money";
import { notifierEnvSchema } from "@usage/notifier";
import { pricingEnvSchema } from "@usage/pricing-service";
import { createUsageProducer } from "@usage/producer";
import { createLogger, parseEnv } from "@usage/runtime";
import { generateEvents } from "@usage/workload";
import type { Command } from "commander";
import { intOption } from "../errors.js";
import { type Pipeline, startPipeline } from "../pipeline.js";

export function registerStart(program: Command): void {
  program
    .command("start")
    .description("run the whole pipeline in one process (local broker and embedded ClickHouse unless configured)")
    .option("--demo", "also feed a generated workload and show live progress")
    .option("--rate <n>", "demo events per second", intOption(1, 1_000_000), 2000)
    .option("--seed <n>", "demo workload seed", intOption(0, 2 ** 32 - 1), 1)
    .action(async (opts: { demo?: boolean; rate: number; seed: number }) => {
      const env = parseEnv(pricingEnvSchema.merge(aggregatorEnvSchema).merge(notifierEnvSchema));
      const logger = createLogger({
        level: env.LOG_LEVEL === "info" && opts.demo ? "warn" : env.LOG_LEVEL,
        name: "usagectl",
      });
      const say = (line: string) => process.stderr.write(`${line}\n`);
      // Signals are handled from the first moment: one that arrives while the broker or the services are still
      // starting stops what has started (the broker included) instead of killing the process and orphaning it.
      const abort = new AbortController();
      let signalled: NodeJS.Signals | undefined;
      let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => {
          if (signalled) return;
          signalled = signal;
          say(`\n${signal}: stopping…`);
          abort.abort(new Error(`${signal} during start`));
          onSignal(signal);
        });
      }
      let pipeline: Pipeline;
      try {
        pipeline = await startPipeline({ env, logger, progress: say, signal: abort.signal });
      } catch (err) {
        if (!abort.signal.aborted) throw err;
        say("stopped before the pipeline was up (what had started is stopped)");
        exitOnceDone();
        return;
      }
      const { shutdown } = pipeline;
      const stopped = new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          const t = performance.now();
          void shutdown.run(signal).then(() => {
            say(`stopped in ${Math.round(performance.now() - t)} ms`);
            resolve();
          });
        };
        if (signalled) stop(signalled);
        else onSignal = stop;
      });
      if (opts.demo && !signalled) {
        try {
          await startDemo({ pipeline, logger, rate: opts.rate, seed: opts.seed, say, isStopping: () => !!signalled });
        } catch (err) {
          // A demo cut short by a stop is not a failure; a demo that failed on its own stops the pipeline with it.
          if (!signalled) {
            await shutdown.run("demo failed");
            exitOnceDone();
            throw err;
          }
        }
      }
      if (!signalled) say(`pipeline running (brokers ${pipeline.brokers.join(",")}); Ctrl-C stops it`);
      // How the group spreads partitions over the members, now and after every rebalance.
      let shown = "";
      const showSpread = () => {
        const lines = pipeline.spread();
        const text = lines.join("\n");
        if (text === shown || signalled) return;
        shown = text;
        for (const line of lines) say(`${process.stderr.isTTY ? "\r\x1b[2K" : ""}${line}`);
      };
      const spreadTimer = setInterval(showSpread, 2000);
      spreadTimer.unref();
      pipeline.shutdown.addFirst("partition spread", async () => clearInterval(spreadTimer));
      await stopped;
      exitOnceDone();
    });
}

/**
 * Once everything is stopped the process ends, even if a client that was told to stop still holds a socket or timer
 * (a consumer retrying a broker that is gone): whoever waits for this process to exit must not wait on that.
 */
function exitOnceDone(): void {
  setTimeout(() => process.exit(), 2000).unref();
}

/** Feeds a generated workload at `rate` events/s and prints live progress once a second. */
async function startDemo(deps: {
  pipeline: Awaited<ReturnType<typeof startPipeline>>;
  logger: ReturnType<typeof createLogger>;
  rate: number;
  seed: number;
  say: (line: string) => void;
  isStopping: () => boolean;
}): Promise<void> {
  const { pipeline, rate, say } = deps;
  const producer = createUsageProducer({ kafka: pipeline.kafka, logger: deps.logger, clientId: "usagectl-demo" });
  // Running totals read back from usage.priced.v1, exact, as a downstream consumer sees them.
  let pricedCount = 0;
  let total = new Money(0);
  const tail = createBatchConsumer({
    kafka: pipeline.kafka,
    groupId: `usagectl-demo-${process.pid}-${Date.now()}`,
    topics: [TOPICS.priced],
    logger: deps.logger,
    commit: "after-batch",
    fromBeginning: false,
  });
  const alerts = createBatchConsumer({
    kafka: pipeline.kafka,
    groupId: `usagectl-demo-alerts-${process.pid}-${Date.now()}`,
    topics: [TOPICS.alerts],
    logger: deps.logger,
    commit: "after-batch",
    fromBeginning: false,
  });
  let running = true;
  let feeder: Promise<void> = Promise.resolve();
  let ticker: NodeJS.Timeout | undefined;
  // Registered before anything starts, so a stop during the demo's own start stops what it had started. Intake
  // stops first (the feeder and its producer, then the tails), before the services stop.
  pipeline.shutdown.addFirst("demo", async () => {
    running = false;
    clearInterval(ticker);
    await feeder.catch(() => undefined);
    await producer.close().catch(() => undefined);
    await tail.stop();
    await alerts.stop();
  });

  await producer.connect();
  if (deps.isStopping()) return;
  await tail.start(async (batch) => {
    for (const m of batch.messages) {
      const d = decode(m.value, pricedUsageEventV1);
      if (d.ok) {
        pricedCount++;
        total = total.plus((d.value as unknown as PricedUsageEvent).total_cost);
      }
    }
  });

  if (deps.isStopping()) return;

  // A demo policy, so thresholds are crossed and alerts appear while the workload runs (set through the API, as
  // an admin would; an org that already has a policy keeps it).
  const headers = { authorization: `Bearer ${pipeline.apiKey}`, "content-type": "application/json" };
  for (const org of ["org_1", "org_2", "org_3"]) {
    const current = (await (await fetch(`${pipeline.apiUrl}/v1/orgs/${org}/policy`, { headers })).json()) as {
      version?: number;
    };
    if ((current.version ?? 0) > 0) continue;
    await fetch(`${pipeline.apiUrl}/v1/orgs/${org}/policy`, {
      method: "PUT",
      headers: { authorization: `Bearer ${pipeline.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        org_limit: "25000",
        seat_tier_limits: { chat: "5", chat_code: "25", standard: "15", premium: "60" },
      }),
    });
  }
  if (deps.isStopping()) return;
  // Alerts as they happen, from spend.alerts.v1.
  await alerts.start(async (batch) => {
    for (const m of batch.messages) {
      const a = JSON.parse(m.value?.toString() ?? "{}") as {
        org_id: string;
        entity: { type: string; id: string };
        kind?: string;
        threshold: string | null;
        spend: string;
        limit: string | null;
      };
      const what = a.kind === "threshold" ? `reached ${a.threshold}` : (a.kind ?? "");
      process.stderr.write(
        `${process.stderr.isTTY ? "\r\x1b[2K" : ""}alert: ${a.org_id} ${a.entity.type} ${a.entity.id} ${what} (spend $${a.spend} of $${a.limit ?? "∞"})\n`,
      );
    }
  });

  if (deps.isStopping()) return;

  feeder = (async () => {
    const events = generateEvents({
      seed: deps.seed,
      count: Number.MAX_SAFE_INTEGER,
      now: Date.now(),
      duplicateRate: 0.02,
    });
    const perTick = Math.max(1, Math.round(rate / 10));
    while (running) {
      const tick = performance.now();
      for (let i = 0; i < perTick && running; i++) {
        const next = events.next();
        if (next.done) return;
        await producer.publish(next.value);
      }
      const wait = 100 - (performance.now() - tick);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();

  const tty = process.stderr.isTTY;
  let last = { published: 0, priced: 0, at: performance.now() };
  ticker = setInterval(
    () => {
      const now = performance.now();
      const secs = (now - last.at) / 1000;
      const published = producer.stats.published;
      let lag = 0;
      for (const w of pipeline.pricing) for (const v of w.consumer.lag().values()) lag += v;
      const line =
        `produced ${published} (${Math.round((published - last.published) / secs)}/s) · ` +
        `priced ${pricedCount} (${Math.round((pricedCount - last.priced) / secs)}/s) · ` +
        `pricing lag ${lag} · priced total $${total.toFixed(6, Money.ROUND_HALF_UP)}`;
      last = { published, priced: pricedCount, at: now };
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else say(line);
    },
    tty ? 1000 : 5000,
  );
  ticker.unref();
  say(`demo: feeding ${rate} events/s (seed ${deps.seed}, 2% duplicates)`);
}
