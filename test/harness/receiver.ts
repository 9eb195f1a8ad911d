/** An org admins' webhook receiver for tests: a real local HTTP server that verifies every signature. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { verifySignature } from "@usage/webhooks";

/** The alert JSON published on spend.alerts.v1 and POSTed to webhooks. */
export interface AlertPayload {
  alert_id: string;
  org_id: string;
  entity: { type: "org" | "user"; id: string };
  period: string;
  kind: string;
  threshold: string | null;
  limit: string | null;
  spend: string;
  status: string;
}

export interface Receiver {
  url: string;
  /** alert_id → how many verified POSTs carried it. */
  received: Map<string, number>;
  /** alert_id → the payload last POSTed for it. */
  payloads: Map<string, AlertPayload>;
  lastPostAt: number;
  badSignatures: number;
  /** POSTs whose X-Usage-Alert-Id header differed from the body's alert_id. */
  mismatchedIds: number;
  posts: number;
  /** Called as each verified POST arrives, before it is answered. */
  onPost?: (alert: AlertPayload) => void;
  close(): Promise<void>;
}

/**
 * Verifies every signature with the exported helper (`secret`) and counts alert ids; answers 204, after `delayMs`
 * when set (keeps POSTs in flight).
 */
export async function startReceiver(options: { secret: string; delayMs?: number }): Promise<Receiver> {
  const delayMs = options.delayMs ?? 0;
  const state = {
    received: new Map<string, number>(),
    payloads: new Map<string, AlertPayload>(),
    badSignatures: 0,
    mismatchedIds: 0,
    posts: 0,
    lastPostAt: 0,
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      state.posts++;
      const rawBody = Buffer.concat(chunks).toString("utf8");
      const check = verifySignature({
        header: String(req.headers["x-usage-signature"] ?? ""),
        rawBody,
        secret: options.secret,
      });
      if (!check.ok) {
        state.badSignatures++;
        res.writeHead(401).end(check.reason);
        return;
      }
      const payload = JSON.parse(rawBody) as AlertPayload;
      const id = payload.alert_id;
      if (req.headers["x-usage-alert-id"] !== id) state.mismatchedIds++;
      // Counted on arrival: a POST whose answer the notifier never sees (it was killed) still arrived.
      state.received.set(id, (state.received.get(id) ?? 0) + 1);
      state.payloads.set(id, payload);
      state.lastPostAt = Date.now();
      receiver.onPost?.(payload);
      const answer = () => {
        if (!res.destroyed) res.writeHead(204).end();
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hooks/usage`,
    received: state.received,
    payloads: state.payloads,
    get lastPostAt() {
      return state.lastPostAt;
    },
    get badSignatures() {
      return state.badSignatures;
    },
    get mismatchedIds() {
      return state.mismatchedIds;
    },
    get posts() {
      return state.posts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
