// SPDX-License-Identifier: Apache-2.0
// `--output table`: left-aligned columns sized to their widest cell, one header line.
export function table(headers: readonly string[], rows: readonly (readonly (string | number | undefined)[])[]): string {
  const cells = rows.map((r) => headers.map((_, i) => (r[i] === undefined ? '' : String(r[i]))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] as string).length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

export type OutputFormat = 'table' | 'json';
