import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * A TPM 2.0 simulator (swtpm) on 127.0.0.1, for tests and benches. swtpm serves
 * one connection at a time: a client that keeps its connection open blocks every
 * other one, so nothing here holds a connection between calls.
 */
export interface Swtpm {
  /** The TPM command port; the control port is port + 1 (the swtpm TCTI assumes so). */
  readonly port: number;
  readonly stateDir: string;
  /** `swtpm:host=127.0.0.1,port=N` */
  readonly tcti: string;
  running(): boolean;
  /** SIGTERM and wait; the state (keys, seeds) stays for start(). */
  stop(): Promise<void>;
  /** Starts again on the same state and ports. */
  start(): Promise<void>;
  /** tpm2_pcrextend of a sha256 PCR with sha256(`data`) — an independent tool, not our bindings. */
  extendPcr(pcr: number, data?: string): Promise<void>;
  /** Runs a tpm2-tools command against this swtpm; resolves with stdout, rejects on a non-zero exit. */
  tool(name: string, args: string[], cwd?: string): Promise<string>;
  /** tpm2_getcap: handles of loaded transient objects, and of loaded or saved sessions. */
  handles(): Promise<{ transient: string[]; sessions: string[] }>;
  /** Everything swtpm printed. */
  output(): string;
  /** The running swtpm process (for a caller's own cleanup registry). */
  process(): ChildProcess | undefined;
}

type AfterHook = { after(fn: () => void | Promise<void>): void };

/** Starts swtpm with fresh state on free ports; stops it and removes its state in `t.after`. */
export async function startSwtpm(t: AfterHook): Promise<Swtpm> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-swtpm-"));
  let child: ChildProcess | undefined;
  let out = "";
  let port = 0;

  async function launch(): Promise<void> {
    out = "";
    const c = spawn(
      "swtpm",
      [
        "socket",
        "--tpm2",
        "--server",
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        "--ctrl",
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        "--tpmstate",
        `dir=${stateDir}`,
        "--flags",
        "not-need-init,startup-clear",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = c;
    c.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    c.stderr!.on("data", (b: Buffer) => (out += b.toString()));
    const until = Date.now() + 10_000;
    while (!(await accepts(port))) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`swtpm exited (${c.exitCode ?? c.signalCode}) on port ${port}: ${out}`);
      if (Date.now() > until) throw new Error(`swtpm did not accept on 127.0.0.1:${port} within 10 s: ${out}`);
      await sleep(10);
    }
  }

  async function stop(): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill("SIGTERM");
    const timer = setTimeout(() => c.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }

  t.after(async () => {
    await stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  // The port pair can be taken between probing and swtpm's bind: try a few pairs.
  for (let attempt = 0; ; attempt++) {
    port = await freePortPair();
    try {
      await launch();
      break;
    } catch (e) {
      await stop();
      if (attempt >= 4) throw e;
    }
  }

  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  const env = { ...process.env, TPM2TOOLS_TCTI: tcti, TSS2_LOG: "all+NONE" };
  return {
    get port() {
      return port;
    },
    stateDir,
    tcti,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    stop,
    start: launch,
    async extendPcr(pcr, data = "sealcache-test") {
      const digest = (await import("node:crypto")).createHash("sha256").update(data).digest("hex");
      await run("tpm2_pcrextend", [`${pcr}:sha256=${digest}`], { env });
    },
    async tool(name, args, cwd) {
      return (await run(name, args, { env, cwd })).stdout;
    },
    async handles() {
      const list = async (what: string) =>
        (await run("tpm2_getcap", [what], { env })).stdout
          .split("\n")
          .map((l) => l.replace(/^-\s*/, "").trim())
          .filter((l) => /^0x/.test(l));
      const transient = await list("handles-transient");
      const sessions = [...(await list("handles-loaded-session")), ...(await list("handles-saved-session"))];
      return { transient, sessions };
    },
    output: () => out,
    process: () => child,
  };
}

/** A port P with P+1 also free, both on 127.0.0.1 (found by binding port 0). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = await listen(0);
    const p = (a.address() as net.AddressInfo).port;
    if (p < 65535) {
      try {
        const b = await listen(p + 1);
        await close(b);
        await close(a);
        return p;
      } catch {
        /* P+1 is taken: try another */
      }
    }
    await close(a);
  }
  throw new Error("no free pair of ports on 127.0.0.1");
}

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

function close(s: net.Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: "127.0.0.1" });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
