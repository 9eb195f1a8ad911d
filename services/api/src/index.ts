export { type Api, type ApiDeps, ApiError, buildApi } from "./server.js";
