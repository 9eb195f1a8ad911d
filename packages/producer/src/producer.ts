/**
 * The producer library for product surfaces: validate an event (SPEC §3), buffer it, publish in batches to
 * `usage.events.v1` keyed by org_id, and push back on the caller when the broker falls behind.
 *
 *   const usage = createUsageProducer({ brokers: ["127.0.0.1:9092"] });
 *   await usage.connect();
 *   const r = await usage.publish(event);   // { ok: false, rejection } for a bad event; resolves once buffered
 *   await usage.close();                     // flushes everything buffered, then disconnects
 *
 * `publish` resolves as soon as the event is buffered; when `maxBuffered` events are waiting it resolves only
 * once the buffer has room again (back-pressure). `flush()` resolves when everything published so far is
 * acknowledged by the broker (acks=all, idempotent: a retried send is never written twice).
 */
import { type Rejection, type UsageEvent, usageEventV1, validateUsageEvent } from "@usage/events";
import { createKafka, createProducer, type Kafka, type Message, type Producer, TOPICS } from "@usage/kafka";
import { createLogger, type Logger } from "@usage/runtime";

export interface UsageProducerOptions {
  brokers?: string[];
  kafka?: Kafka;
  clientId?: string;
  logger?: Logger;
  /** Events per Kafka request. Default 1000. */
  batchSize?: number;
  /** How long a partial batch waits for more events. Default 10 ms. */
  lingerMs?: number;
  /** Events buffered before `publish` waits. Default 20,000. */
  maxBuffered?: number;
  /** Concurrent batches in flight. Default 4. */
  maxInFlight?: number;
  backfillDays?: number;
  now?: () => number;
  topic?: string;
}

export type PublishResult = { ok: true; event: UsageEvent } | { ok: false; rejection: Rejection };

export interface UsageProducer {
  connect(): Promise<void>;
  publish(event: unknown): Promise<PublishResult>;
  /** Publishes already-encoded bytes as they are (tools and tests that need malformed input). */
  publishRaw(message: Message): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
  readonly stats: { published: number; rejected: number; acknowledged: number };
}

export function createUsageProducer(options: UsageProducerOptions = {}): UsageProducer {
  const logger = options.logger ?? createLogger({ level: "warn", name: "usage-producer" });
  const kafka =
    options.kafka ??
    createKafka({
      brokers: options.brokers ?? ["127.0.0.1:9092"],
      clientId: options.clientId ?? "usage-producer",
      logger,
    });
  const batchSize = options.batchSize ?? 1000;
  const lingerMs = options.lingerMs ?? 10;
  const maxBuffered = options.maxBuffered ?? 20_000;
  const maxInFlight = options.maxInFlight ?? 4;
  const now = options.now ?? Date.now;
  const topic = options.topic ?? TOPICS.events;

  let producer: Producer | undefined;
  let buffer: Message[] = [];
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();
  let roomWaiters: (() => void)[] = [];
  let failure: Error | undefined;
  let closed = false;
  const stats = { published: 0, rejected: 0, acknowledged: 0 };

  function schedule(): void {
    if (buffer.length >= batchSize) {
      drain();
    } else if (!timer && buffer.length > 0) {
      timer = setTimeout(() => {
        timer = undefined;
        drain(true);
      }, lingerMs);
    }
  }

  /** Sends full batches (and, when `all`, the partial one) while fewer than maxInFlight are outstanding. */
  function drain(all = false): void {
    while (inFlight.size < maxInFlight && (buffer.length >= batchSize || (all && buffer.length > 0))) {
      const messages = buffer.slice(0, batchSize);
      buffer = buffer.slice(messages.length);
      const sending: Promise<void> = producer!
        .send({ topic, messages, acks: -1 })
        .then(() => {
          stats.acknowledged += messages.length;
        })
        .catch((err: Error) => {
          // Keep the events: put them back at the front and surface the error from flush().
          buffer = messages.concat(buffer);
          failure = err;
          logger.error({ err, count: messages.length }, "usage events could not be published; kept for retry");
        })
        .finally(() => {
          inFlight.delete(sending);
          wakeWaiters();
          if (!failure) schedule();
        });
      inFlight.add(sending);
    }
    wakeWaiters();
  }

  function wakeWaiters(): void {
    if (buffer.length < maxBuffered && roomWaiters.length > 0) {
      const waiters = roomWaiters;
      roomWaiters = [];
      for (const w of waiters) w();
    }
  }

  async function enqueue(message: Message): Promise<void> {
    if (closed) throw new Error("usage producer is closed");
    if (!producer) throw new Error("usage producer is not connected: call connect() first");
    while (buffer.length >= maxBuffered) {
      await new Promise<void>((resolve) => roomWaiters.push(resolve));
    }
    buffer.push(message);
    schedule();
  }

  async function flush(): Promise<void> {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    failure = undefined;
    while (buffer.length > 0 || inFlight.size > 0) {
      drain(true);
      if (inFlight.size > 0) await Promise.race(inFlight);
      if (failure) throw failure;
    }
  }

  return {
    stats,
    async connect() {
      producer = createProducer(kafka);
      await producer.connect();
    },
    async publish(input) {
      const valid = validateUsageEvent(input, { now: now(), backfillDays: options.backfillDays });
      if (!valid.ok) {
        stats.rejected++;
        return valid;
      }
      await enqueue({ key: valid.value.org_id, value: usageEventV1.encode(valid.value) });
      stats.published++;
      return { ok: true, event: valid.value };
    },
    async publishRaw(message) {
      await enqueue(message);
    },
    flush,
    async close() {
      if (closed) return;
      try {
        if (producer) await flush();
      } finally {
        closed = true;
        await producer?.disconnect();
      }
    },
  };
}
