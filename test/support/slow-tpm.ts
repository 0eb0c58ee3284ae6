import net from "node:net";
import type { Swtpm } from "./swtpm.js";

/**
 * A slow TPM: a TCP relay in front of swtpm that holds every chunk of the command
 * channel for `delayMs` each way, as a slow TPM (or a busy bus) would answer. The
 * swtpm TCTI takes its control channel at port + 1, so the relay listens on two
 * consecutive ports and relays the control channel as it is. Used to make the
 * daemon's unseal take long enough that something else (an MQTT command) reliably
 * arrives before the cache is open.
 */
export interface SlowTpm {
  readonly tcti: string;
  close(): Promise<void>;
}

export async function slowTpm(t: { after(fn: () => void | Promise<void>): void }, tpm: Swtpm, delayMs: number): Promise<SlowTpm> {
  const sockets = new Set<net.Socket>();
  const relay = (target: number, delay: number) =>
    net.createServer((client) => {
      const upstream = net.connect({ host: "127.0.0.1", port: target });
      sockets.add(client).add(upstream);
      const pipe = (from: net.Socket, to: net.Socket) => {
        // One queue per direction, so chunks keep their order whatever the timers do.
        let chain = Promise.resolve();
        from.on("data", (c: Buffer) => {
          chain = chain.then(() => new Promise<void>((r) => setTimeout(r, delay))).then(() => void (to.destroyed || to.write(c)));
        });
        from.on("close", () => void chain.then(() => to.destroy()));
        from.on("error", () => to.destroy());
      };
      pipe(client, upstream);
      pipe(upstream, client);
    });
  for (let i = 0; ; i++) {
    const cmd = relay(tpm.port, delayMs);
    const ctrl = relay(tpm.port + 1, 0);
    try {
      const port = await listen(cmd, 0);
      await listen(ctrl, port + 1);
      const out: SlowTpm = {
        tcti: `swtpm:host=127.0.0.1,port=${port}`,
        close: async () => {
          for (const s of sockets) s.destroy();
          await Promise.all([cmd, ctrl].map((s) => new Promise((r) => s.close(r))));
        },
      };
      t.after(() => out.close());
      return out;
    } catch (e) {
      cmd.close();
      ctrl.close();
      if (i >= 20) throw e;
    }
  }
}

function listen(s: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve((s.address() as net.AddressInfo).port));
  });
}
