#!/usr/bin/env node
// Starts the daemon in the foreground on the embedded default (examples/sealcache.yaml)
// and, once its socket answers, prints how to query it. Ctrl-C stops it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const config = path.join(root, "examples/sealcache.yaml");
const socket = path.join(root, ".demo/sealcache.sock");
const rel = path.relative(process.cwd(), socket) || socket;

fs.mkdirSync(path.join(root, ".demo"), { recursive: true, mode: 0o700 });
const flags = JSON.parse(fs.readFileSync(path.join(root, "packaging/daemon-node-flags.json"), "utf8"));
const child = spawn(process.execPath, [...flags, path.join(root, "dist/main.mjs"), "daemon", "--config", config], { stdio: ["ignore", "inherit", "inherit"] });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 0 : 1)));

const ready = () =>
  new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: "/v1/secrets/demo/api-token", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
  });

for (let i = 0; i < 200; i++) {
  if (await ready()) {
    process.stderr.write(
      [
        "",
        `sealcache demo is serving on ${rel}. In another terminal:`,
        `  curl --unix-socket ${rel} http://localhost/v1/secrets/demo/api-token`,
        `  curl --unix-socket ${rel} 'http://localhost/v1/secrets/demo/db-password?format=raw'`,
        `  ./bin/sealcache.mjs --config examples/sealcache.yaml get demo/kafka-password`,
        `  ./bin/sealcache.mjs --config examples/sealcache.yaml status`,
        "Ctrl-C stops the daemon; the sealed cache stays in .demo/data.",
        "",
      ].join("\n") + "\n",
    );
    break;
  }
  await new Promise((r) => setTimeout(r, 100));
}
