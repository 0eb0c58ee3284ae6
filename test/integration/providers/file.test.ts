import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { beforeEach, describe, test } from "node:test";
import { createLogger } from "../../../src/log.js";
import type { Resolution } from "../../../src/providers/file/beneath.js";
import { create } from "../../../src/providers/file/provider.js";
import { isProviderError, type FetchResult, type Provider, type SecretRef } from "../../../src/providers/provider.js";
import { assertNoLeaks, planted } from "../../support/planted.js";
import { tmpDir } from "../../support/tmp.js";

const logger = createLogger({ level: "silent" });
const dec = new TextDecoder();

// Every test runs with each way of opening beneath `dir` (src/providers/file/beneath.ts):
// openat2 where the kernel has it, and the component walk older kernels get.
let resolution: Resolution = "openat2";

function fileProvider(dir: string, maxBytes = 1024 * 1024): Provider {
  return create({ name: "local", options: { type: "file", dir, max_bytes: maxBytes }, logger }, { resolution });
}

async function fetchOne(p: Provider, ref: Omit<SecretRef, "name"> & { name?: string }): Promise<FetchResult> {
  const [r, ...rest] = await p.fetch([{ name: ref.name ?? "t/secret", ...ref }], new AbortController().signal);
  assert.equal(rest.length, 0);
  return r!;
}

async function value(p: Provider, ref: Omit<SecretRef, "name">): Promise<string> {
  const r = await fetchOne(p, ref);
  assert.ok(r.ok, r.ok ? "" : r.error.message);
  return dec.decode(r.value);
}

/** A per-secret permanent failure whose message matches and quotes no content. */
async function failsWith(p: Provider, ref: Omit<SecretRef, "name">, re: RegExp): Promise<void> {
  const r = await fetchOne(p, ref);
  assert.equal(r.ok, false, `${ref.path} was read; it must be refused`);
  if (r.ok) return;
  assert.ok(isProviderError(r.error));
  assert.equal(r.error.kind, "permanent");
  assert.match(r.error.message, re);
  assertNoLeaks(r.error.message, "file provider error");
}

for (const how of ["openat2", "walk"] as const)
  describe(`file provider (${how})`, () => {
    beforeEach(() => {
      resolution = how;
    });

    test("one final newline (LF or CRLF) is stripped; everything else is kept byte for byte", async (t) => {
      const dir = tmpDir(t);
      const tok = planted("tok");
      fs.writeFileSync(path.join(dir, "lf"), `${tok}\n`);
      fs.writeFileSync(path.join(dir, "crlf"), `${tok}\r\n`);
      fs.writeFileSync(path.join(dir, "two"), `${tok}\n\n`);
      fs.writeFileSync(path.join(dir, "none"), ` ${tok} `);
      fs.writeFileSync(path.join(dir, "empty"), "");
      const bin = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0a]);
      fs.writeFileSync(path.join(dir, "bin"), bin);
      const p = fileProvider(dir);
      assert.equal(await value(p, { path: "lf" }), tok);
      assert.equal(await value(p, { path: "crlf" }), tok);
      assert.equal(await value(p, { path: "two" }), `${tok}\n`);
      assert.equal(await value(p, { path: "none" }), ` ${tok} `);
      assert.equal(await value(p, { path: "empty" }), "");
      const r = await fetchOne(p, { path: "bin" });
      assert.ok(r.ok);
      assert.deepEqual(Buffer.from(r.value!), bin.subarray(0, 5));
    });

    test("a batch answers every secret by name, in subfolders, with keys from JSON and .env files", async (t) => {
      const dir = tmpDir(t);
      const pw = planted("pw");
      const kafka = planted("kafka");
      fs.mkdirSync(path.join(dir, "db"));
      fs.writeFileSync(path.join(dir, "db", "conn.json"), JSON.stringify({ user: "u", password: pw }));
      fs.writeFileSync(path.join(dir, "pipeline.env"), `KAFKA_PASSWORD=${kafka}\n`);
      const p = fileProvider(dir);
      const results = await p.fetch(
        [
          { name: "db/password", path: "db/conn.json", key: "password" },
          { name: "kafka/password", path: "pipeline.env", key: "KAFKA_PASSWORD" },
          { name: "gone", path: "gone" },
        ],
        new AbortController().signal,
      );
      const byName = new Map(results.map((r) => [r.name, r]));
      assert.deepEqual([...byName.keys()].sort(), ["db/password", "gone", "kafka/password"]);
      const db = byName.get("db/password")!;
      const kp = byName.get("kafka/password")!;
      assert.ok(db.ok && kp.ok);
      assert.equal(dec.decode(db.value), pw);
      assert.equal(dec.decode(kp.value), kafka);
      assert.match(db.version ?? "", /^mtime:\d+$/);
      assert.equal(byName.get("gone")!.ok, false);
    });

    test("a missing key in a JSON file is a per-secret permanent error that does not quote the file", async (t) => {
      const dir = tmpDir(t);
      fs.writeFileSync(path.join(dir, "conn.json"), JSON.stringify({ passwd: planted("x") }));
      await failsWith(fileProvider(dir), { path: "conn.json", key: "password" }, /conn\.json: JSON object has no key "password"$/);
    });

    test("the version changes when the file is rewritten", async (t) => {
      const dir = tmpDir(t);
      const f = path.join(dir, "tok");
      fs.writeFileSync(f, "one");
      fs.utimesSync(f, new Date(1_700_000_000_000), new Date(1_700_000_000_000));
      const p = fileProvider(dir);
      const a = await fetchOne(p, { path: "tok" });
      fs.writeFileSync(f, "two");
      fs.utimesSync(f, new Date(1_700_000_060_000), new Date(1_700_000_060_000));
      const b = await fetchOne(p, { path: "tok" });
      assert.ok(a.ok && b.ok);
      assert.equal(a.version, "mtime:1700000000000");
      assert.equal(b.version, "mtime:1700000060000");
      assert.equal(dec.decode(b.value), "two");
    });

    test("paths may not leave dir: '..', absolute paths and symlinks pointing outside are refused", async (t) => {
      const base = tmpDir(t);
      const dir = path.join(base, "secrets");
      fs.mkdirSync(dir);
      const outside = path.join(base, "outside");
      fs.writeFileSync(outside, planted("outside"));
      fs.mkdirSync(path.join(base, "secrets-evil"));
      fs.writeFileSync(path.join(base, "secrets-evil", "x"), planted("prefix"));
      fs.symlinkSync(outside, path.join(dir, "link-out"));
      fs.symlinkSync("../outside", path.join(dir, "link-rel"));
      fs.symlinkSync(path.join(base, "secrets-evil"), path.join(dir, "sibling"));
      fs.mkdirSync(path.join(dir, "sub"));
      const p = fileProvider(dir);
      await failsWith(p, { path: "../outside" }, /must be relative to .* without '\.\.'$/);
      await failsWith(p, { path: "sub/../../outside" }, /without '\.\.'$/);
      await failsWith(p, { path: outside }, /must be relative to/);
      await failsWith(p, { path: "link-out" }, /link-out resolves outside /);
      await failsWith(p, { path: "link-rel" }, /resolves outside /);
      // A folder whose name starts with dir's name is still outside it.
      await failsWith(p, { path: "sibling/x" }, /resolves outside /);
    });

    test("a symlink inside dir, and dir itself being a symlink, are fine", async (t) => {
      const base = tmpDir(t);
      const real = path.join(base, "real");
      fs.mkdirSync(real);
      fs.writeFileSync(path.join(real, "tok"), "inside\n");
      fs.symlinkSync("tok", path.join(real, "alias"));
      fs.symlinkSync(real, path.join(base, "mount"));
      const p = fileProvider(path.join(base, "mount"));
      assert.equal(await value(p, { path: "alias" }), "inside");
      assert.equal(await value(p, { path: "tok" }), "inside");
    });

    test("a Kubernetes secret mount (..data -> ..<timestamp>/, entries -> ..data/<key>) works and follows an atomic swap", async (t) => {
      const dir = tmpDir(t);
      const v1 = planted("k8s1");
      const v2 = planted("k8s2");
      const gen1 = path.join(dir, "..2024_01_01_00_00_00.000000001");
      fs.mkdirSync(gen1);
      fs.writeFileSync(path.join(gen1, "token"), v1);
      fs.writeFileSync(path.join(gen1, "config.json"), JSON.stringify({ password: v1 }));
      fs.symlinkSync(path.basename(gen1), path.join(dir, "..data"));
      fs.symlinkSync("..data/token", path.join(dir, "token"));
      fs.symlinkSync("..data/config.json", path.join(dir, "config.json"));
      const p = fileProvider(dir);
      assert.equal(await value(p, { path: "token" }), v1);
      assert.equal(await value(p, { path: "config.json", key: "password" }), v1);

      // kubelet writes a new generation and renames a new ..data symlink over the old one.
      const gen2 = path.join(dir, "..2024_01_02_00_00_00.000000002");
      fs.mkdirSync(gen2);
      fs.writeFileSync(path.join(gen2, "token"), v2);
      fs.writeFileSync(path.join(gen2, "config.json"), JSON.stringify({ password: v2 }));
      fs.symlinkSync(path.basename(gen2), path.join(dir, "..data_tmp"));
      fs.renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
      fs.rmSync(gen1, { recursive: true });
      assert.equal(await value(p, { path: "token" }), v2);
      assert.equal(await value(p, { path: "config.json", key: "password" }), v2);
    });

    test("a missing file is a per-secret permanent error; a folder is not a regular file", async (t) => {
      const dir = tmpDir(t);
      fs.mkdirSync(path.join(dir, "folder"));
      fs.symlinkSync("nowhere", path.join(dir, "dangling"));
      const p = fileProvider(dir);
      await failsWith(p, { path: "nope" }, new RegExp(`^${dir}/nope does not exist$`));
      await failsWith(p, { path: "dangling" }, /dangling does not exist$/);
      await failsWith(p, { path: "folder" }, /folder is not a regular file$/);
    });

    test("a FIFO in the folder is refused promptly instead of blocking the read forever", async (t) => {
      const dir = tmpDir(t);
      execFileSync("mkfifo", [path.join(dir, "pipe")]);
      fs.writeFileSync(path.join(dir, "tok"), "ok");
      const p = fileProvider(dir);
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("fetch of a FIFO did not return within 2 s")), 2_000)));
      try {
        const results = await Promise.race([
          p.fetch(
            [
              { name: "pipe", path: "pipe" },
              { name: "tok", path: "tok" },
            ],
            new AbortController().signal,
          ),
          hung,
        ]);
        const [pipe, tok] = results;
        assert.ok(pipe && !pipe.ok && pipe.error.kind === "permanent");
        assert.match(pipe.error.message, /pipe is not a regular file$/);
        assert.ok(tok?.ok);
      } finally {
        clearTimeout(timer);
      }
    });

    test("the whole folder missing is a thrown transient ProviderError (an outage, not a per-secret error)", async (t) => {
      const base = tmpDir(t);
      const dir = path.join(base, "not-mounted-yet");
      const p = fileProvider(dir);
      await assert.rejects(
        p.fetch([{ name: "a", path: "a" }], new AbortController().signal),
        (e: unknown) => isProviderError(e) && e.kind === "transient" && e.message === `file provider local: folder ${dir} is not available (ENOENT)`,
      );
      // The mount appears: the same provider instance reads from it.
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, "a"), "ok\n");
      assert.equal(await value(p, { path: "a" }), "ok");
    });

    test("a file over max_bytes is refused without being read; exactly max_bytes is fine", async (t) => {
      const dir = tmpDir(t);
      fs.writeFileSync(path.join(dir, "fits"), "x".repeat(64));
      fs.writeFileSync(path.join(dir, "big"), planted("big") + "y".repeat(64));
      const p = fileProvider(dir, 64);
      assert.equal(await value(p, { path: "fits" }), "x".repeat(64));
      await failsWith(p, { path: "big" }, /big is \d+ bytes, over max_bytes 64$/);
    });

    test("symlink loops, links into /proc, devices and sockets are refused; nothing outside is opened", async (t) => {
      const base = tmpDir(t);
      const dir = path.join(base, "secrets");
      fs.mkdirSync(dir);
      fs.symlinkSync("loop-b", path.join(dir, "loop-a"));
      fs.symlinkSync("loop-a", path.join(dir, "loop-b"));
      fs.symlinkSync("self", path.join(dir, "self"));
      fs.symlinkSync("/proc/self/root/etc/hostname", path.join(dir, "proc-root"));
      fs.symlinkSync("/proc/self/fd/0", path.join(dir, "proc-fd"));
      fs.symlinkSync("/dev/zero", path.join(dir, "zero"));
      execFileSync("mknod", [path.join(dir, "null"), "c", "1", "3"]);
      const sock = net.createServer().listen(path.join(dir, "sock"));
      t.after(() => sock.close());
      await new Promise((r) => sock.once("listening", r));
      const p = fileProvider(dir);
      await failsWith(p, { path: "loop-a" }, /loop-a cannot be read \(ELOOP: a symlink loop, or a link into \/proc\)$/);
      await failsWith(p, { path: "self" }, /self cannot be read \(ELOOP/);
      await failsWith(p, { path: "proc-root" }, /proc-root resolves outside /);
      await failsWith(p, { path: "proc-fd" }, /proc-fd resolves outside /);
      await failsWith(p, { path: "zero" }, /zero resolves outside /);
      await failsWith(p, { path: "null" }, /null is not a regular file$/);
      await failsWith(p, { path: "sock" }, /sock is not a regular file$/);
    });

    test("an absolute symlink is followed when it names a file inside dir (by its configured or its real path)", async (t) => {
      const base = tmpDir(t);
      const real = path.join(base, "real");
      fs.mkdirSync(path.join(real, "sub"), { recursive: true });
      fs.writeFileSync(path.join(real, "sub", "tok"), "inside\n");
      fs.symlinkSync(real, path.join(base, "mount"));
      fs.symlinkSync(path.join(real, "sub", "tok"), path.join(real, "by-real"));
      fs.symlinkSync(path.join(base, "mount", "sub", "tok"), path.join(real, "by-mount"));
      fs.symlinkSync(path.join(base, "mount", "sub"), path.join(real, "folder-link"));
      fs.symlinkSync("../tok", path.join(real, "sub", "up"));
      fs.writeFileSync(path.join(real, "tok"), "top\n");
      const p = fileProvider(path.join(base, "mount"));
      assert.equal(await value(p, { path: "by-real" }), "inside");
      assert.equal(await value(p, { path: "by-mount" }), "inside");
      assert.equal(await value(p, { path: "folder-link/tok" }), "inside");
      assert.equal(await value(p, { path: "folder-link/up" }), "top");
      await failsWith(p, { path: "folder-link" }, /folder-link is not a regular file$/);
    });
  });
