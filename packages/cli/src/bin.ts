#!/usr/bin/env node
import { main } from "./program.js";

const code = await main(process.argv);
process.exitCode = code;
// A command that failed may leave a half-connected client behind (a broker lost during its start, say): exit rather
// than wait on its sockets. stdout and stderr are synchronous for files and pipes on Linux, so nothing is lost.
if (code !== 0) process.exit(code);
