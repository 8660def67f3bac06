/** Result rows, the printed table and machine information. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export type Verdict = 'PASS' | 'MISS' | 'info' | 'n/a';

export interface Target {
  /** `>=` : the figure must be at least `value`; `<=` : at most. */
  op: '>=' | '<=';
  value: number;
}

export interface Row {
  section: string;
  metric: string;
  /** undefined when the figure could not be measured (always a MISS when there is a target). */
  value: number | undefined;
  unit: string;
  target?: Target;
  verdict: Verdict;
  note?: string;
}

export function row(
  section: string,
  metric: string,
  value: number | undefined,
  unit: string,
  target?: Target,
  note?: string,
): Row {
  let verdict: Verdict = 'info';
  if (target) {
    if (value === undefined || Number.isNaN(value)) verdict = 'MISS';
    else verdict = (target.op === '>=' ? value >= target.value : value <= target.value) ? 'PASS' : 'MISS';
  }
  return { section, metric, value, unit, ...(target ? { target } : {}), verdict, ...(note ? { note } : {}) };
}

/** A figure that could not be computed because another section was not run. */
export function notApplicable(section: string, metric: string, unit: string, target: Target, note: string): Row {
  return { section, metric, value: undefined, unit, target, verdict: 'n/a', note };
}

function formatNumber(v: number | undefined, unit: string): string {
  if (v === undefined || Number.isNaN(v)) return '—';
  let text: string;
  if (unit === 'x') text = v.toFixed(2);
  else if (unit === 'MB' || unit === 's' || unit === 'ms' || unit === 'cores') {
    text = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  } else text = Math.round(v).toLocaleString('en-US');
  return unit ? `${text} ${unit}` : text;
}

function formatTarget(t: Target | undefined, unit: string): string {
  if (!t) return '';
  return `${t.op === '>=' ? '≥' : '≤'} ${formatNumber(t.value, unit)}`;
}

export function renderTable(rows: Row[]): string {
  const header = ['Section', 'Metric', 'Value', 'Target', 'Result', 'Note'];
  const cells = rows.map((r) => [
    r.section,
    r.metric,
    formatNumber(r.value, r.unit),
    formatTarget(r.target, r.unit),
    r.verdict === 'info' ? '' : r.verdict,
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i === 2 || i === 3 ? x.padStart(widths[i] ?? 0) : x.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [line(header), sep];
  let last = '';
  for (const [i, c] of cells.entries()) {
    const section = rows[i]?.section ?? '';
    if (last && section !== last) out.push('');
    last = section;
    out.push(line(c));
  }
  return out.join('\n');
}

export interface MachineInfo {
  cpuModel: string;
  logicalCores: number;
  availableParallelism: number;
  cgroupCpuLimit: string | undefined;
  totalMemoryMB: number;
  /** 1-minute load average when the bench started (other work on the machine skews the figures). */
  loadAverage1m: number;
  node: string;
  platform: string;
  kernel: string;
  gitCommit: string | undefined;
  gitDirty: boolean | undefined;
}

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function git(args: string[], cwd: string): string | undefined {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

export function machineInfo(cwd: string): MachineInfo {
  const cpus = os.cpus();
  const cpuMax = tryRead('/sys/fs/cgroup/cpu.max');
  let cgroupCpuLimit: string | undefined;
  if (cpuMax) {
    const [quota, period] = cpuMax.split(/\s+/);
    cgroupCpuLimit =
      quota === 'max' || !quota || !period ? 'none' : `${(Number(quota) / Number(period)).toFixed(2)} cores`;
  }
  const status = git(['status', '--porcelain', '--untracked-files=no'], cwd);
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    logicalCores: cpus.length,
    availableParallelism: os.availableParallelism(),
    cgroupCpuLimit,
    totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
    loadAverage1m: os.loadavg()[0] ?? 0,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    gitCommit: git(['rev-parse', '--short', 'HEAD'], cwd),
    gitDirty: status === undefined ? undefined : status.length > 0,
  };
}

export function renderMachine(m: MachineInfo): string {
  return [
    `CPU      ${m.cpuModel}`,
    `Cores    ${m.logicalCores} logical, ${m.availableParallelism} available${m.cgroupCpuLimit ? `, cgroup limit ${m.cgroupCpuLimit}` : ''}`,
    `Memory   ${m.totalMemoryMB.toLocaleString('en-US')} MB; load average (1 min) at start ${m.loadAverage1m.toFixed(2)}`,
    `Node     ${m.node} (${m.platform}, kernel ${m.kernel})`,
    `Commit   ${m.gitCommit ?? 'unknown'}${m.gitDirty ? ' (with uncommitted changes)' : ''}`,
  ].join('\n');
}
