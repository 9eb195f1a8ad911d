/**
 * Runs in every integration and fault test file: after the file, stop any `usagectl` process a test started and did
 * not stop (a test that failed midway), before the next file resets the topics of the shared broker.
 */
import { afterAll } from "vitest";
import { stopSpawned } from "./index.js";

afterAll(stopSpawned);
