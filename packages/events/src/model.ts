export const SEAT_TIERS = ["chat", "chat_code", "standard", "premium", "enterprise"] as const;
export type SeatTier = (typeof SEAT_TIERS)[number];

export const PRODUCTS = ["chat", "claude_code", "cowork"] as const;
export type Product = (typeof PRODUCTS)[number];

export const TOKEN_KINDS = ["input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];
export const MAX_TOKENS = 1_000_000_000;

/** Usage event v1 (SPEC §3) in its JSON form. `occurred_at` is normalised to `YYYY-MM-DDTHH:mm:ss.sssZ`. */
export interface UsageEvent {
  event_id: string;
  occurred_at: string;
  org_id: string;
  user_id: string;
  user_email?: string | null;
  account_uuid?: string | null;
  request_id?: string | null;
  region?: string | null;
  seat_tier: SeatTier;
  product: Product;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
}

/** A usage event with its list-price cost (SPEC §4). Money fields are exact decimal strings (USD). */
export interface PricedUsageEvent extends UsageEvent {
  rate_card_version: string;
  long_context: boolean;
  prompt_tokens: number;
  input_cost: string;
  output_cost: string;
  cache_write_cost: string;
  cache_read_cost: string;
  total_cost: string;
}

/** Reason codes of SPEC §3 for an event sent to `usage.dlq.v1`. */
export const REJECT_CODES = [
  "invalid_encoding",
  "invalid_field",
  "unknown_model",
  "future_timestamp",
  "outside_backfill_window",
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

export interface Rejection {
  code: RejectCode;
  /** The offending field, for `invalid_field`. */
  field?: string;
  message: string;
  /** The event id when it could be read, so every error names its event. */
  event_id?: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; rejection: Rejection };
