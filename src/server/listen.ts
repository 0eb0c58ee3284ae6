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
  // Only a socket is ever replaced there: the daemon is often root, and a regular
  // file, a folder or a symlink at the socket path (someone's data, a planted link)
  // is not its to delete.
  const st = lstatOrUndefined(socketPath);
  if (st?.isSymbolicLink()) {
    throw new SealcacheError(
      "unavailable",
      `socket path ${socketPath} is a symbolic link${fs.existsSync(socketPath) ? "" : " (dangling)"}; the daemon replaces only a stale socket ` +
        `there: remove it, or choose another socket path`,
    );
  }
  if (st && !st.isSocket()) {
    throw new SealcacheError(
      "unavailable",
      `socket path ${socketPath} exists and is not a socket (${kind(st)}); the daemon replaces only a stale socket there: move it away, or choose ` +
        `another socket path`,
    );
  }
  if (st) {
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

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

function kind(st: fs.Stats): string {
  return st.isFile() ? "a regular file" : st.isDirectory() ? "a folder" : st.isFIFO() ? "a FIFO" : "a device or other file";
}
