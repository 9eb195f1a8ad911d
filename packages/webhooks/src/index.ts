export {
  ALERT_ID_HEADER,
  SIGNATURE_HEADER,
  signPayload,
  type VerifyFailure,
  type VerifyResult,
  verifySignature,
} from "./signature.js";
export { isLoopbackHost, type WebhookUrlCheck, webhookUrlProblem } from "./url.js";
