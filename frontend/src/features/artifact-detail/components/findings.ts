import type { Vulnerability } from '@/api/types';

export const SEVERITY_ORDER = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'];

export function severityRank(s: string): number {
  const i = SEVERITY_ORDER.indexOf(s.toUpperCase());
  return i === -1 ? SEVERITY_ORDER.length : i;
}

export type FindingSort = 'severity' | 'id' | 'package' | 'cvss';

export interface FindingFilter {
  severities: string[];
  fixAvailable: boolean;
  text: string;
  sort: FindingSort;
  order: 'asc' | 'desc';
}

export const defaultFilter: FindingFilter = { severities: [], fixAvailable: false, text: '', sort: 'severity', order: 'asc' };

export function filterFindings(list: Vulnerability[], f: FindingFilter): Vulnerability[] {
  const text = f.text.trim().toLowerCase();
  const out = list.filter(
    (v) =>
      (f.severities.length === 0 || f.severities.includes(v.severity.toUpperCase())) &&
      (!f.fixAvailable || v.fixed.trim() !== '') &&
      (text === '' || v.id.toLowerCase().includes(text) || v.package.toLowerCase().includes(text) || v.title.toLowerCase().includes(text)),
  );
  const dir = f.order === 'asc' ? 1 : -1;
  out.sort((a, b) => {
    let c = 0;
    switch (f.sort) {
      case 'severity':
        c = severityRank(a.severity) - severityRank(b.severity);
        break;
      case 'id':
        c = a.id.localeCompare(b.id);
        break;
      case 'package':
        c = a.package.localeCompare(b.package);
        break;
      case 'cvss':
        c = (b.cvss_score ?? -1) - (a.cvss_score ?? -1);
        break;
    }
    return c * dir || a.id.localeCompare(b.id);
  });
  return out;
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  // Cells starting with = + - @ are formulas in spreadsheets: prefix them.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function findingsCsv(list: Vulnerability[]): string {
  const cols: (keyof Vulnerability)[] = ['id', 'severity', 'package', 'installed', 'fixed', 'cvss_score', 'title', 'url', 'target'];
  return [cols.join(','), ...list.map((v) => cols.map((c) => csvCell(v[c])).join(','))].join('\r\n') + '\r\n';
}

/** Saves a small generated text file (findings export); artifact bytes never go this way. */
export function saveText(text: string, filename: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
