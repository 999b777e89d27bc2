import { describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { vuln } from '@/testing/fixtures';
import { filterFindings, findingsCsv, defaultFilter } from './findings';
import { FindingsTable } from './FindingsTable';

const LIST = [
  vuln('CVE-2024-0001', 'LOW', '', 'zlib', 3.1),
  vuln('CVE-2024-0002', 'CRITICAL', '3.0.8', 'openssl', 9.8),
  vuln('CVE-2024-0003', 'HIGH', '', 'curl', 7.5),
  vuln('CVE-2024-0004', 'HIGH', '2.1', 'expat', 8.1),
  vuln('GHSA-xxxx-yyyy', 'MEDIUM', '1.2.3', 'lodash', null),
];

function ids() {
  const table = screen.getByRole('table', { name: 'Vulnerabilities' });
  return within(table)
    .getAllByRole('row')
    .slice(1)
    .map((r) => within(r).getAllByRole('cell')[0]!.textContent);
}

describe('findings table', () => {
  it('sorts by severity first, links ids to their advisory, shows installed and fixed versions', () => {
    render(<FindingsTable vulnerabilities={LIST} exportName="tool-1" />);
    expect(ids()).toEqual(['CVE-2024-0002', 'CVE-2024-0003', 'CVE-2024-0004', 'GHSA-xxxx-yyyy', 'CVE-2024-0001']);
    const link = screen.getByRole('link', { name: 'CVE-2024-0002' });
    expect(link).toHaveAttribute('href', 'https://avd.aquasec.com/nvd/cve-2024-0002');
    expect(link).toHaveAttribute('rel', 'noopener noreferrer');
    expect(screen.getAllByText('no fix')).toHaveLength(2);
    expect(screen.getByText('3.0.8')).toBeInTheDocument();
  });

  it('filters by severity and by "fix available"', async () => {
    const user = userEvent.setup();
    render(<FindingsTable vulnerabilities={LIST} exportName="tool-1" />);
    await user.click(screen.getByRole('button', { name: 'high (2)' }));
    expect(ids()).toEqual(['CVE-2024-0003', 'CVE-2024-0004']);
    await user.click(screen.getByRole('checkbox', { name: 'Fix available' }));
    expect(ids()).toEqual(['CVE-2024-0004']);
    await user.click(screen.getByRole('button', { name: 'critical (1)' }));
    expect(ids()).toEqual(['CVE-2024-0002', 'CVE-2024-0004']);
    expect(screen.getByText('2 of 5 vulnerabilities shown')).toBeInTheDocument();
    await user.click(screen.getByRole('checkbox', { name: 'Fix available' }));
    await user.type(screen.getByRole('textbox', { name: 'Search findings' }), 'curl');
    expect(ids()).toEqual(['CVE-2024-0003']);
  });

  it('sorts by CVSS and package on request', async () => {
    const user = userEvent.setup();
    render(<FindingsTable vulnerabilities={LIST} exportName="tool-1" />);
    await user.click(screen.getByRole('button', { name: 'Package' }));
    expect(ids()[0]).toBe('CVE-2024-0003'); // curl
    await user.click(screen.getByRole('button', { name: 'CVSS' }));
    expect(ids()).toEqual(['CVE-2024-0002', 'CVE-2024-0004', 'CVE-2024-0003', 'CVE-2024-0001', 'GHSA-xxxx-yyyy']);
  });

  it('exports CSV safely (quotes, no spreadsheet formulas)', () => {
    const rows = filterFindings([{ ...LIST[0]!, title: '=HYPERLINK("x"), "quoted"' }], defaultFilter);
    const csv = findingsCsv(rows);
    expect(csv.split('\r\n')[0]).toBe('id,severity,package,installed,fixed,cvss_score,title,url,target');
    expect(csv).toContain(`"'=HYPERLINK(""x""), ""quoted"""`);
  });
});
