/** Groups request times into bursts (requests less than `gapMs` apart); returns each burst's start and size. */
export function bursts(times: readonly number[], gapMs = 60): { at: number; size: number }[] {
  const out: { at: number; size: number }[] = [];
  let last = -Infinity;
  for (const t of [...times].sort((a, b) => a - b)) {
    if (t - last > gapMs) out.push({ at: t, size: 0 });
    out[out.length - 1]!.size++;
    last = t;
  }
  return out;
}
