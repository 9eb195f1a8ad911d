export { createAuthenticator, type Principal } from "./auth.js";
export { type ApiService, startApiService } from "./main.js";
export {
  type ControlReader,
  type CreditsAnswer,
  createSpendReadModel,
  type SpendReader,
  type SpendReadModel,
} from "./read-model.js";
export {
  type Api,
  type ApiDeps,
  ApiError,
  buildApi,
  type ControlChangeInput,
  type ControlWriter,
  routesOf,
} from "./server.js";
