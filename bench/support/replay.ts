import fs from "node:fs";
import { get } from "./http.js";

/** Headers the daemon sets on a lookup; node:http adds Date and Connection for both servers. */
const COPIED = ["content-type", "cache-control", "age", "sealcache-stale", "sealcache-version"];

/**
 * Saves a real daemon answer (body and headers) to `file` for bare-server.mjs to
 * replay, so the baseline writes the same bytes and the difference is the daemon's
 * own work.
 */
export async function saveReply(socket: string, urlPath: string, file: string): Promise<string> {
  const r = await get(socket, urlPath);
  if (r.status !== 200) throw new Error(`GET ${urlPath} answered ${r.status}: ${r.body.slice(0, 200)}`);
  const headers = Object.fromEntries(COPIED.filter((h) => r.headers[h] !== undefined).map((h) => [h, String(r.headers[h])]));
  fs.writeFileSync(file, JSON.stringify({ body: r.body, headers }));
  return file;
}
