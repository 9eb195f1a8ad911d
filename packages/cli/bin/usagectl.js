#!/usr/bin/env node
// Entry for `npx usagectl`: runs the built CLI (npm ci builds it through the root `prepare` script).
import "../dist/bin.js";
