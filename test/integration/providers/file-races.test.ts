import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { createLogger } from "../../../src/log.js";
import type { Resolution } from "../../../src/providers/file/beneath.js";
import { create, type FileProviderInternals } from "../../../src/providers/file/provider.js";
import type { Provider, SecretRef } from "../../../src/providers/provider.js";
import { planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

// What a local account that can write in the provider's dir can do while the daemon reads it.

const logger = createLogger({ level: "silent" });
const dec = new TextDecoder();
const SWAP_MS = 3_000;

function fileProvider(dir: string, internals: FileProviderInternals = {}): Provider {
  return create({ name: "local", options: { type: "file", dir, max_bytes: 1024 * 1024 }, logger }, internals);
}

/**
 * A separate process that, for `ms`, swaps `dir/tok` between a file and a symlink
 * to `outside/tok`, and `dir/sub` between a folder and a symlink to `outside`
 * (each by an atomic rename, so the names always exist).
 */
function swapLoop(dir: string, outside: string, ms: number): Promise<number> {
  const script = `
    const fs = require("node:fs"), path = require("node:path");
    const [dir, outside, ms] = process.argv.slice(1);
    const until = Date.now() + Number(ms);
    let n = 0;
    const swap = (name, asLink, asReal) => {
      const tmp = path.join(dir, ".tmp-" + name);
      fs.rmSync(tmp, { recursive: true, force: true });
      if (n % 2) fs.symlinkSync(asLink, tmp); else asReal(tmp);
      fs.rmSync(path.join(dir, name), { recursive: true, force: true, maxRetries: 0 }); // a folder cannot be renamed over a link
      fs.renameSync(tmp, path.join(dir, name));
    };
    while (Date.now() < until) {
      n++;
      swap("tok", path.join(outside, "tok"), (p) => fs.writeFileSync(p, "inside"));
      swap("sub", outside, (p) => { fs.mkdirSync(p); fs.writeFileSync(path.join(p, "tok"), "inside"); });
    }
    process.stdout.write(String(n));
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script, dir, outside, String(ms)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`swap loop exited ${code}`))));
  });
}

describe("file provider under attack", () => {
  for (const resolution of ["openat2", "walk"] as Resolution[]) {
    test(`a symlink swapped in while it reads never makes it serve a root-only file outside dir (${resolution})`, { timeout: 60_000 }, async (t) => {
      const base = tmpDir(t);
      const dir = path.join(base, "secrets");
      const outside = path.join(base, "root-only");
      fs.mkdirSync(dir);
      fs.mkdirSync(outside, { mode: 0o700 });
      const secret = planted("outside");
      fs.writeFileSync(path.join(outside, "tok"), secret, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, "tok"), "inside");
      fs.mkdirSync(path.join(dir, "sub"));
      fs.writeFileSync(path.join(dir, "sub", "tok"), "inside");

      const p = fileProvider(dir, { resolution });
      const refs: SecretRef[] = Array.from({ length: 40 }, (_, i) => ({ name: `s${i}`, path: i % 2 ? "tok" : "sub/tok" }));
      let done = false;
      const swaps = swapLoop(dir, outside, SWAP_MS).finally(() => (done = true));
      const seen = { inside: 0, refused: 0, fetches: 0 };
      while (!done) {
        for (const r of await p.fetch(refs, new AbortController().signal)) {
          if (!r.ok) {
            seen.refused++;
            continue;
          }
          const v = dec.decode(r.value);
          assert.notEqual(v, secret, `the file outside dir was served (${r.name}) after ${seen.fetches} fetches`);
          assert.equal(v, "inside");
          seen.inside++;
        }
        seen.fetches++;
      }
      assert.ok((await swaps) > 100, "the swap loop ran");
      // Both outcomes happened, so the reads really raced the swaps.
      assert.ok(seen.inside > 0 && seen.refused > 0, JSON.stringify(seen));
    });
  }

  test("a file rewritten in place while it is read is read again; one that never settles is a transient error", async (t) => {
    const dir = tmpDir(t);
    const f = path.join(dir, "tok");
    const a = planted("a");
    const b = planted("b") + "-longer";
    fs.writeFileSync(f, a);
    // Rewrite in place (truncate, then write) between the read and the stat after it.
    let rewrites = 0;
    const once = fileProvider(dir, {
      afterRead: (_p, attempt) => {
        if (attempt === 1) {
          fs.writeFileSync(f, b);
          rewrites++;
        }
      },
    });
    const [r1] = await once.fetch([{ name: "t", path: "tok" }], new AbortController().signal);
    assert.ok(r1?.ok, r1 && !r1.ok ? r1.error.message : "");
    assert.equal(dec.decode(r1.value), b, "the read that saw the change was dropped, the next one kept");
    assert.equal(rewrites, 1);

    let n = 0;
    const never = fileProvider(dir, { afterRead: () => fs.writeFileSync(f, `${a}${"x".repeat(++n)}`) });
    const [r2] = await never.fetch([{ name: "t", path: "tok" }], new AbortController().signal);
    assert.ok(r2 && !r2.ok);
    assert.equal(r2.error.kind, "transient");
    assert.equal(
      r2.error.message,
      `${f} changed while it was being read, 3 times in a row; the cached value is kept (write secrets to a temporary file and rename it over the old one)`,
    );
    assert.equal(n, 3);
  });
});
