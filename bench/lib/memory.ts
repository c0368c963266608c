/**
 * A process's memory as the kernel counts it, and its trend over many
 * operations: what the memory benchmark samples and reports.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Resident set size in MB, from /proc/<pid>/status (VmRSS); NaN once the process is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** A process's title as ps shows it (graft names its own: `graft standby <service>`, `graft worker <service> warm`); '' once it is gone. */
export function titleOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** The processes whose parent is `pid`, with their command name (comm). */
export function childrenOf(pid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === pid) out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** One reading: after `ops` operations, `mb` megabytes. */
export interface Sample {
  ops: number;
  mb: number;
}

/** Least-squares slope of mb over ops, in MB per 100 operations (NaN with fewer than two samples). */
export function slopePer100(samples: readonly Sample[]): number {
  const xs = samples.filter((s) => Number.isFinite(s.mb));
  if (xs.length < 2) return NaN;
  const mx = xs.reduce((a, s) => a + s.ops, 0) / xs.length;
  const my = xs.reduce((a, s) => a + s.mb, 0) / xs.length;
  const sxx = xs.reduce((a, s) => a + (s.ops - mx) ** 2, 0);
  const sxy = xs.reduce((a, s) => a + (s.ops - mx) * (s.mb - my), 0);
  return sxx === 0 ? NaN : (sxy / sxx) * 100;
}
