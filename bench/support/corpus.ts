import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { tempDir } from "./cleanup.js";
import { configFixture, writeFixture, type Fixture } from "./fixture.js";
import { get, secretPath, sleep } from "./http.js";
import { onTmpfs, readCpuMs, readMemory } from "./procfs.js";
import { emit, note } from "./report.js";
import { startDaemon, waitSynced } from "./servers.js";

/** What the first sync of a corpus cost, measured while it was built. */
export interface FirstSync {
  /** Spawn until /v1/health counts every secret synced. */
  readonly ms: number;
  /** The daemon's CPU time (all threads) over the same span. */
  readonly cpuMs: number;
  /** VmHWM at the end of the sync: the peak of the whole first run. */
  readonly peakMb: number;
  /** VmRSS a second after. */
  readonly idleMb: number;
  /** How long one /v1/health took at the end (each poll walks every secret). */
  readonly healthMs: number;
  readonly pollMs: number;
}

/**
 * N secrets synced once per run: the secrets folder, and a warm data_dir that
 * benches copy (warmCopy) rather than syncing again. The fixture's own daemon is
 * never started again, so the template stays as the first sync left it.
 */
export interface Corpus {
  readonly size: number;
  readonly fixture: Fixture;
  readonly firstSync: FirstSync;
}

/** The corpus sizes of the footprint figures (issue 12). */
export const SIZES = [10_000, 100_000] as const;

const built = new Map<number, Promise<Corpus>>();

/**
 * The corpus of `size` secrets for this run, built (and its first sync measured
 * and emitted under bench `firstsync`) by whichever bench asks first.
 */
export function corpus(size: number): Promise<Corpus> {
  let c = built.get(size);
  if (!c) {
    c = build(size);
    built.set(size, c);
    // A failed build is not cached: the next bench gets its own error, not this one's.
    c.catch(() => built.delete(size));
  }
  return c;
}

/** Health, once the last secret answers: every 250 ms, or 1 s where one answer is real work for the daemon. */
function pollFor(size: number): number {
  return size >= 50_000 ? 1_000 : 250;
}

/**
 * Where data_dirs go: a real disk, as /var/lib/sealcache is on a gateway (write
 * counts and fsync costs are meaningless on tmpfs). os.tmpdir() unless it is a
 * tmpfs, then /var/tmp; undefined when neither is a disk.
 */
export function diskBase(): string | undefined {
  return [os.tmpdir(), "/var/tmp"].find((d) => fs.existsSync(d) && !onTmpfs(d));
}

/** Where the file provider's folders go: a tmpfs when there is one (/dev/shm), as /run/secrets is. */
export function sourceBase(): string | undefined {
  return fs.existsSync("/dev/shm") && onTmpfs("/dev/shm") ? "/dev/shm" : undefined;
}

async function build(size: number): Promise<Corpus> {
  const t = performance.now();
  const fixture = writeFixture(size, { base: diskBase(), sourceBase: sourceBase() });
  note(`corpus: ${size} secrets written in ${((performance.now() - t) / 1000).toFixed(1)} s (${fixture.dir})`);
  const pollMs = pollFor(size);
  const t0 = performance.now();
  const d = startDaemon(fixture);
  try {
    await waitSynced(d, 600_000, { pollMs, lastPath: secretPath(fixture.names.at(-1)!) });
    const ms = performance.now() - t0;
    const cpuMs = readCpuMs(d.pid);
    const peakMb = readMemory(d.pid).hwmMb;
    const h0 = performance.now();
    await get(d.socket, "/v1/health", 60_000);
    const healthMs = performance.now() - h0;
    await sleep(1_000);
    const idleMb = readMemory(d.pid).rssMb;
    const firstSync = { ms, cpuMs, peakMb, idleMb, healthMs, pollMs };
    const tag = label(size);
    note(
      `corpus: first sync of ${size} secrets in ${(ms / 1000).toFixed(1)} s, ${(cpuMs / 1000).toFixed(1)} s of daemon CPU; peak RSS ${peakMb.toFixed(0)} MB, ${idleMb.toFixed(0)} MB after; one /v1/health took ${healthMs.toFixed(0)} ms (polled every ${pollMs} ms)`,
    );
    emit("firstsync", `first_sync_s_${tag}`, ms / 1000, "s");
    emit("firstsync", `first_sync_cpu_s_${tag}`, cpuMs / 1000, "s");
    emit("firstsync", `first_sync_rss_mb_peak_${tag}`, peakMb, "MB");
    emit("firstsync", `first_sync_rss_mb_after_${tag}`, idleMb, "MB");
    emit("firstsync", `health_ms_${tag}`, healthMs, "ms");
    return { size, fixture, firstSync };
  } finally {
    await d.stop();
  }
}

/**
 * A copy of the corpus's warm cache in a temp dir of its own, with a config of the
 * same secrets whose file provider points at a folder that does not exist: every
 * answer can only come from the cache, never from a sync at start.
 */
export function warmCopy(c: Corpus): Fixture {
  const dir = tempDir("scb-", diskBase());
  fs.cpSync(c.fixture.dataDir, path.join(dir, "data"), { recursive: true, preserveTimestamps: true });
  return configFixture(dir, c.fixture.names, path.join(dir, "secrets.away"));
}

export function label(size: number): string {
  return size >= 1000 ? `${size / 1000}k` : String(size);
}
