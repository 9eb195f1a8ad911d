export { createPricer, LONG_CONTEXT_THRESHOLD, type Pricer, resolveModelId } from "./price.js";
export {
  DEFAULT_RATE_CARD_URL,
  loadRateCard,
  type ModelRates,
  parseRateCard,
  RATE_SCALE,
  type RateCard,
  RateCardError,
  type RateCardVersion,
  type TokenRates,
  versionAt,
} from "./rate-card.js";
