export { type Pipeline, startPipeline } from "./pipeline.js";
export { buildProgram, main } from "./program.js";
