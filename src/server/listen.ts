import fs from "node:fs";
import type http from "node:http";
import net from "node:net";
import path from "node:path";
import { SealcacheError } from "../errors.js";

/** Prepares the socket's folder, clears a stale socket left by a crash, listens, sets 0660. */
export async function listen(server: http.Server, socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > 107) {
    throw new SealcacheError("config", `socket path ${socketPath} is longer than the 107 bytes a Unix socket path may have; choose a shorter socket path`);
  }
  const dir = path.dirname(socketPath);
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    fs.chmodSync(dir, 0o750);
  }
  if (fs.existsSync(socketPath)) {
    if (await answers(socketPath)) {
      throw new SealcacheError("unavailable", `another process is already serving on ${socketPath}; stop it or choose another socket path`);
    }
    fs.unlinkSync(socketPath);
  }
  // Create the socket file already restricted, then set the exact mode.
  const old = process.umask(0o117);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  fs.chmodSync(socketPath, 0o660);
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
