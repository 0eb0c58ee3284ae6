/**
 * A plain left-aligned table for terminals. `maxWidths[i]` bounds column i: a longer
 * cell is cut with an ellipsis, so one long value (a rejected 300-character name in
 * the audit trail) does not widen every row. `--json` keeps every value whole.
 */
export function table(header: string[], rows: string[][], maxWidths: readonly (number | undefined)[] = []): string {
  const cut = rows.map((r) => r.map((c, i) => truncate(c, maxWidths[i])));
  const widths = header.map((h, i) => Math.max(h.length, ...cut.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...cut.map(line)].join("\n") + "\n";
}

/** `s` cut to at most `max` characters, the last of them an ellipsis when anything was cut. */
export function truncate(s: string, max: number | undefined): string {
  if (max === undefined || s.length <= max) return s;
  return s.slice(0, Math.max(0, max - 1)) + "…";
}

/** "1 secret", "3 secrets", "0 secrets"; `many` for irregular plurals ("2 hierarchies"). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
