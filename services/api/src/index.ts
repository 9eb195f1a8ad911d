export { createAuthenticator, type Principal } from "./auth.js";
export { type Api, type ApiDeps, ApiError, buildApi } from "./server.js";
