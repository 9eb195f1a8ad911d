export {
  canonicalLimit,
  canonicalMoney,
  divide,
  formatMoney,
  limitToMoney,
  MONEY_PRECISION,
  Money,
  type MoneyValue,
  PLAIN_DECIMAL,
  parseMoney,
  type Rounding,
  sumMoney,
  UNLIMITED,
} from "./money.js";
export { addMoney, DecimalSum, decimalPlaces, formatScaled, netCost, parseScaled } from "./scaled.js";
