import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { DAEMON_NODE_FLAGS, ROOT } from "../../support/daemon.js";

test("the sealcache command starts node with the daemon's shipped flags", () => {
  const shebang = fs.readFileSync(path.join(ROOT, "bin/sealcache.mjs"), "utf8").split("\n")[0]!;
  assert.equal(shebang, `#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(" ")}`);
  assert.ok(DAEMON_NODE_FLAGS.length > 0);
});
