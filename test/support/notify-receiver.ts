// Plays systemd's side of sd_notify: binds an AF_UNIX datagram socket (a path, or
// `@name` for an abstract one) and records each message with the pid the kernel
// attributes it to (SO_PASSCRED, which is how systemd enforces NotifyAccess=main).
// Node cannot receive Unix datagrams, so a python3 child does the receiving and
// prints one JSON line per message; it exits when our end of its stdin closes.
import { spawn } from "node:child_process";
import crypto from "node:crypto";

const RECEIVER = String.raw`
import json, os, socket, struct, sys, threading
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
print(json.dumps({"bound": True}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, d in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", d[:12])[0]
    print(json.dumps({"pid": pid, "text": data.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifyMessage {
  /** Date.now() when the message reached this process. */
  readonly at: number;
  /** The sending process, as the kernel reports it. */
  readonly pid: number | null;
  readonly text: string;
  /** KEY=value assignments, one a line. */
  readonly fields: Readonly<Record<string, string>>;
}

export interface NotifyReceiver {
  /** The NOTIFY_SOCKET value to give the daemon. */
  readonly address: string;
  readonly messages: readonly NotifyMessage[];
  /** Resolves with the first message (already received or to come) carrying `key` (and `value`, if given). */
  waitFor(key: string, value?: string, timeoutMs?: number): Promise<NotifyMessage>;
  /** Messages carrying key=value, optionally only those received at or after `since`. */
  count(key: string, value: string, since?: number): number;
}

/** A unique abstract socket name for a test. */
export function abstractAddress(): string {
  return `@sealcache-test-${process.pid}-${crypto.randomBytes(6).toString("hex")}`;
}

/** Starts a receiver bound to `address` (a path in a temp dir, or `@name`); stopped when the test ends. */
export async function notifyReceiver(t: { after(fn: () => void | Promise<void>): void }, address: string): Promise<NotifyReceiver> {
  const child = spawn("python3", ["-c", RECEIVER, address], { stdio: ["pipe", "pipe", "pipe"] });
  const messages: NotifyMessage[] = [];
  let stderr = "";
  let buffered = "";
  let onBound: (() => void) | undefined;
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  child.stdout.on("data", (c: Buffer) => {
    buffered += c.toString("utf8");
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffered.slice(0, nl)) as { bound?: true; pid: number | null; text: string };
      buffered = buffered.slice(nl + 1);
      if (line.bound) {
        onBound?.();
        continue;
      }
      const fields: Record<string, string> = {};
      for (const kv of line.text.split("\n")) {
        const eq = kv.indexOf("=");
        if (eq > 0) fields[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      messages.push({ at: Date.now(), pid: line.pid, text: line.text, fields });
    }
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  t.after(async () => {
    child.stdin.end();
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    onBound = resolve;
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`notify receiver exited (${code}) before binding ${address}: ${stderr}`)));
  });

  const matches = (m: NotifyMessage, key: string, value?: string) => key in m.fields && (value === undefined || m.fields[key] === value);
  return {
    address,
    messages,
    async waitFor(key, value, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const m = messages.find((x) => matches(x, key, value));
        if (m) return m;
        if (Date.now() > until)
          throw new Error(`no ${key}${value === undefined ? "" : `=${value}`} within ${timeoutMs} ms; received ${JSON.stringify(messages.map((x) => x.text))}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    count: (key, value, since = 0) => messages.filter((m) => m.at >= since && matches(m, key, value)).length,
  };
}
