export {
  type DailySpend,
  DECAY,
  FORECAST_METHOD,
  type Forecast,
  type ForecastInput,
  forecast,
  MIN_TODAY_MS,
  RATE_PLACES,
} from "./forecast.js";
