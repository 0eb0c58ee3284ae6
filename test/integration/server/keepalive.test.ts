// The idle timeout of a kept-alive connection is the figure the README gives (15 s):
// an agent that keeps one connection open between lookups is not cut off sooner.
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { demoConfig, launch } from "../../support/daemon.js";
import { tmpDir } from "../../support/tmp.js";
import { LIMITS } from "../../../src/server/http.js";

test("a kept-alive connection answers Keep-Alive: timeout=15 and is closed after 15 s idle, not sooner", { timeout: 40_000 }, async (t) => {
  assert.equal(LIMITS.keepAliveTimeoutMs, 15_000, "the README's figure");
  const dir = tmpDir(t);
  const d = await launch(t, dir, demoConfig(dir), { waitFor: "synced" });
  const s = net.connect(d.socket);
  let head = "";
  const answered = new Promise<number>((resolve) =>
    s.on("data", (c: Buffer) => {
      head += c.toString("latin1");
      if (head.includes("\r\n\r\n")) resolve(Date.now());
    }),
  );
  const closed = new Promise<number>((resolve) => s.on("close", () => resolve(Date.now())));
  s.write("GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
  const at = await answered;
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /\r\nKeep-Alive: timeout=15\r\n/i);
  const idle = (await closed) - at;
  assert.ok(idle >= 14_500 && idle <= 17_500, `closed after ${idle} ms idle`);
});
