// SPDX-License-Identifier: Apache-2.0
// Durations as operators write them (`500ms`, `10s`, `5m`, `1h30m`, `2d`), for flags and settings.

const DURATION = /^(\d+(\.\d+)?(ms|s|m|h|d))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "5m", "1h30m", "500ms" (and "0") → milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(DURATION_PART)) ms += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
  return ms;
}
