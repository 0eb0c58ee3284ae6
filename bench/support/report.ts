// Figures go to stdout, one JSON line each, so `npm run bench | jq` works; everything
// meant for a human (progress, target checks) goes to stderr.

export type Unit = "ms" | "us" | "req/s" | "MB" | "s" | "ratio" | "requests";

export function emit(bench: string, metric: string, value: number, unit: Unit): number {
  process.stdout.write(JSON.stringify({ bench, metric, value: round(value), unit }) + "\n");
  return value;
}

/** Targets are reported, never asserted: a slow CI box must not fail the run. */
export function target(bench: string, metric: string, value: number, op: "<=" | ">=", limit: number): void {
  const met = op === "<=" ? value <= limit : value >= limit;
  note(`${bench}: ${metric} = ${round(value)} (target ${op} ${limit}: ${met ? "met" : "MISSED"})`);
}

export function note(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Three significant decimals are more than any of these measurements can resolve. */
function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
