// Figures go to stdout, one JSON line each, so `npm run bench | jq` works; everything
// meant for a human (progress, target checks, the summary table) goes to stderr.
import { formatTable, type Column, type SummaryRow } from "./summary.js";

export type Unit = "ms" | "us" | "req/s" | "MB" | "s" | "ratio" | "requests" | "percent" | "per_s" | "per_min" | "bytes" | "MB/h";

export function emit(bench: string, metric: string, value: number, unit: Unit): number {
  process.stdout.write(JSON.stringify({ bench, metric, value: round(value), unit }) + "\n");
  return value;
}

/** Targets are reported, never asserted: a slow CI box must not fail the run. Returns whether it was met. */
export function target(bench: string, metric: string, value: number, op: "<=" | ">=", limit: number): boolean {
  const met = op === "<=" ? value <= limit : value >= limit;
  note(`${bench}: ${metric} = ${round(value)} (target ${op} ${limit}: ${met ? "met" : "MISSED"})`);
  return met;
}

export function note(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Three significant decimals are more than any of these measurements can resolve. */
function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

// The summary table printed at the end of a run: one row per figure of the
// footprint issue, one cell per corpus size, filled in by whichever bench measures it.
const rows = new Map<string, SummaryRow>();

/**
 * Records one cell of the summary: `figure` at corpus size `column`, its text, the
 * floor it is compared with (bare node, same run), the target, and whether it was met.
 * Rows keep the order in which they were first recorded.
 */
export function summarize(figure: string, column: Column, cell: { text: string; floor?: string; target?: string; met?: boolean }): void {
  let row = rows.get(figure);
  if (!row) {
    row = { figure, cells: {}, floors: {}, target: cell.target ?? "", met: {} };
    rows.set(figure, row);
  }
  row.cells[column] = cell.text;
  if (cell.floor !== undefined) row.floors[column] = cell.floor;
  if (cell.target !== undefined && !row.target.includes(cell.target)) row.target = row.target ? `${row.target}; ${cell.target}` : cell.target;
  if (cell.met !== undefined) row.met[column] = cell.met;
}

/** Prints the summary to stderr, if any bench recorded a row. */
export function printSummary(): void {
  if (rows.size === 0) return;
  process.stderr.write(`\n${formatTable([...rows.values()])}\n`);
}
