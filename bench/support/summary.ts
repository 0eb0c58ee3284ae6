// The end-of-run summary table: pure formatting, unit-tested (test/unit/bench/summary.test.ts).

/** Corpus sizes the footprint figures are measured at; "1k" for the idle and flash benches. */
export type Column = "1k" | "10k" | "100k";

export interface SummaryRow {
  readonly figure: string;
  readonly cells: Partial<Record<Column, string>>;
  /** node's floor for the figure, per size (often one value for all). */
  readonly floors: Partial<Record<Column, string>>;
  target: string;
  readonly met: Partial<Record<Column, boolean>>;
}

const HEADER = ["figure", "10k", "100k", "floor (bare node)", "target", "met?"];
const ORDER: Column[] = ["1k", "10k", "100k"];

/**
 * A fixed-width text table: figure | 10k | 100k | floor | target | met?. A figure
 * measured on 1,000 secrets (idle, flash) shows in the 10k column as "1k: …", so
 * no cell is ever read as a size it was not measured at.
 */
export function formatTable(rows: readonly SummaryRow[]): string {
  const body = rows.map((r) => [r.figure, cell(r, "10k"), r.cells["100k"] ?? "", floor(r), r.target, met(r)]);
  const all = [HEADER, ...body];
  const widths = HEADER.map((_, i) => Math.max(...all.map((line) => line[i]!.length)));
  const line = (cols: string[]) => {
    // Trailing empty cells are left off, so a row without floor or target ends at its value.
    let n = cols.length;
    while (n > 1 && cols[n - 1] === "") n--;
    return cols
      .slice(0, n)
      .map((c, i) => c.padEnd(widths[i]!))
      .join(" | ")
      .trimEnd();
  };
  return [line(HEADER), widths.map((w) => "-".repeat(w)).join("-|-"), ...body.map(line)].join("\n");
}

function cell(r: SummaryRow, column: "10k"): string {
  const parts: string[] = [];
  if (r.cells["1k"] !== undefined) parts.push(`1k: ${r.cells["1k"]}`);
  if (r.cells[column] !== undefined) parts.push(r.cells[column]!);
  return parts.join("; ");
}

/** One floor when every size had the same, else each labelled with its size. */
function floor(r: SummaryRow): string {
  const present = ORDER.filter((c) => r.floors[c] !== undefined);
  const distinct = new Set(present.map((c) => r.floors[c]));
  if (distinct.size <= 1) return present.length > 0 ? r.floors[present[0]!]! : "";
  return present.map((c) => `${c}: ${r.floors[c]}`).join("; ");
}

function met(r: SummaryRow): string {
  const present = ORDER.filter((c) => r.met[c] !== undefined);
  if (present.length === 0) return "";
  const word = (ok: boolean) => (ok ? "met" : "MISSED");
  if (present.every((c) => r.met[c] === r.met[present[0]!])) return word(r.met[present[0]!]!);
  return present.map((c) => `${c} ${word(r.met[c]!)}`).join(", ");
}

/** Three significant digits, no exponent: 0.0523, 5.23, 52.3, 523, 5230. */
export function sig3(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v))));
  return v.toFixed(Math.min(digits, 6));
}

/** A value with its unit as the table shows it. */
export function fmt(v: number, unit: "ms" | "us" | "MB" | "s" | "x" | "%" | "MB/h" | "/s" | "req/s"): string {
  const n = sig3(v);
  switch (unit) {
    case "x":
      return `${n}x`;
    case "%":
      return `${n}%`;
    case "us":
      return `${n} µs`;
    default:
      return `${n} ${unit}`;
  }
}
