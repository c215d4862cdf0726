/** The comparison table, as plain text and as Markdown, and what machine it was measured on. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg, totalmem } from 'node:os';

export interface Row {
  metric: string;
  ours?: number;
  reference?: number;
  /** Decimal places to show. */
  digits: number;
}

function cells(row: Row): string[] {
  const show = (value?: number) => (value === undefined ? '—' : value.toFixed(row.digits));
  const ratio = row.ours !== undefined && row.reference ? (row.ours / row.reference).toFixed(2) : '—';
  return [row.metric, show(row.ours), show(row.reference), ratio];
}

const HEADER = ['metric', 'ours', 'reference', 'ours/reference'];

export function textTable(rows: Row[]): string {
  const lines = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  const format = (line: string[]) =>
    line.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [format(lines[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...lines.slice(1).map(format)].join('\n');
}

export function markdownTable(rows: Row[]): string {
  const line = (values: string[]) => `| ${values.join(' | ')} |`;
  return [line(HEADER), '| --- | ---: | ---: | ---: |', ...rows.map((row) => line(cells(row)))].join('\n');
}

const formatLoad = (load: number[]) => load.map((value) => value.toFixed(2)).join(', ');

/** `loadAtStart`: os.loadavg() before the first run; other work on the machine skews the figures. */
export function machineDescription(loadAtStart: number[]): string[] {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  const version = (command: string, args: string[]) => {
    try {
      return execFileSync(command, args, { encoding: 'utf8' }).trim().split('\n')[0];
    } catch {
      return 'unknown';
    }
  };
  return [
    `date: ${new Date().toISOString()}`,
    `nproc: ${version('nproc', [])}, CPU: ${cpu}, memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `load average (1, 5, 15 min): ${formatLoad(loadAtStart)} at start, ${formatLoad(loadavg())} at end`,
    `node ${process.version}, ${version('skopeo', ['--version'])}, reference: ${version('/usr/bin/docker-registry', ['--version'])}`,
  ];
}
