export { addressProblem, BlockedAddressError, checkHost, type Lookup, publicOnlyAgent, safeLookup } from "./address.js";
export { createSecretBox, loadSecretKey, type SecretBox } from "./secrets.js";
export {
  ALERT_ID_HEADER,
  SIGNATURE_HEADER,
  signPayload,
  type VerifyFailure,
  type VerifyResult,
  verifySignature,
} from "./signature.js";
export { type WebhookUrlCheck, webhookUrlProblem } from "./url.js";
