/**
 * A read-side view of spend control for an API process that runs apart from the aggregator (`usagectl run api`):
 * the same SpendState, rebuilt from ClickHouse every `refreshMs`. Caps and allowance are as fresh as the last
 * refresh plus the aggregator's write delay. A policy change is stored by the API in policy_versions and applied
 * here at once; the aggregator picks it up from policy_versions within a second and emits the signals. Purchases and
 * auto-reload settings likewise: stored by the API, re-read here, recorded and signalled by the aggregator.
 */
import type { ClickHouseClient } from "@usage/clickhouse";
import type { Logger } from "@usage/runtime";
import { loadSpendState, type SpendControl } from "./aggregator.js";
import { creditView } from "./credits.js";
import type { SpendState } from "./state.js";

export interface SpendView extends SpendControl {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createSpendView(deps: {
  clickhouse: ClickHouseClient;
  logger: Logger;
  backfillDays: number;
  refreshMs?: number;
  now?: () => number;
}): SpendView {
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: "spend-view" });
  let state: SpendState | undefined;
  let timer: NodeJS.Timeout | undefined;
  let refreshing = false;
  const refresh = async () => {
    if (refreshing) return;
    refreshing = true;
    try {
      const fresh = await loadSpendState({
        clickhouse: deps.clickhouse,
        now,
        backfillDays: deps.backfillDays,
        logger: log,
      });
      // Keep policies applied here that the store has not returned yet (a newer version wins either way).
      if (state) {
        for (const orgId of state.orgIds()) {
          const mine = state.org(orgId);
          if (mine.policyVersion > fresh.org(orgId).policyVersion)
            fresh.setPolicy(orgId, mine.policy, mine.policyVersion);
        }
      }
      state = fresh;
    } catch (err) {
      log.warn({ err }, "spend view refresh failed; serving the previous state");
    } finally {
      refreshing = false;
    }
  };
  const ready = () => {
    if (!state) throw new Error("spend view not loaded yet");
    return state;
  };
  return {
    async start() {
      await refresh();
      timer = setInterval(() => void refresh(), deps.refreshMs ?? 1000);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
    },
    isReady: () => state !== undefined,
    caps: (orgId) => {
      ready().prune();
      return ready().caps(orgId);
    },
    allowance: (orgId, userId) => ready().allowance(orgId, userId),
    policy: (orgId) => {
      const org = ready().org(orgId);
      return { policy: org.policy, version: org.policyVersion };
    },
    async applyPolicy(orgId, policy, version) {
      if (version > ready().org(orgId).policyVersion) ready().setPolicy(orgId, policy, version);
      return [];
    },
    credits: (orgId) => creditView(ready().org(orgId), ready().currentPeriod()),
    // The aggregator records reloads and signals (it polls the ledger and the settings every second); this view
    // only re-reads the store so the answer shows the purchase or the settings at once.
    async applyCredits() {
      await refresh();
      return [];
    },
    async applyAutoReload() {
      await refresh();
      return [];
    },
  };
}
