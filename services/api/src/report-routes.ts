/**
 * The Claude Admin API's usage and cost report shapes (SPEC §8, turn 2):
 *   GET /v1/orgs/:org/usage_report/messages
 *   GET /v1/orgs/:org/cost_report
 * (being built; see the issue "analytics and interfaces")
 */
import type { ClickHouseClient } from "@usage/clickhouse";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";

export interface ReportRouteDeps {
  clickhouse: ClickHouseClient;
  /** Checks the bearer key against the `:org` route parameter; throws (as an API error) when it may not. */
  authorize: (request: FastifyRequest) => { orgId: string };
  now: () => number;
}

export function registerReportRoutes<L extends FastifyBaseLogger>(
  _app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  _deps: ReportRouteDeps,
): void {}
