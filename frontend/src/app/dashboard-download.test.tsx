/** The dashboard (stats, scanner, dead letters) and the browser download (single-use link). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderApp } from '@/testing/render';
import { makeArtifact, state } from '@/testing/mock-api';

describe('dashboard and download link', () => {
  it('dashboard: counts by status, findings chart, denials and dead letters for admins, DB freshness', async () => {
    state.current.artifacts = [makeArtifact({ status: 'approved' }), makeArtifact({ status: 'quarantined' }), makeArtifact({ status: 'approved' })];
    await renderApp('/', 'admin');
    const chart = await screen.findByRole('list', { name: 'Findings by severity' });
    expect(within(chart).getByText('High').parentElement).toHaveTextContent('3');
    expect(screen.getByRole('heading', { name: 'Recent denials' })).toBeInTheDocument();
    expect(screen.getByText(/connie: artifacts.download/)).toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'Dead-lettered events' })).toBeInTheDocument();
    expect(screen.getByText(/vulnerability DB is stale/)).toBeInTheDocument();
  });

  it('dashboard for a consumer: no denials, no dead letters', async () => {
    state.current.artifacts = [makeArtifact({ status: 'approved' })];
    await renderApp('/', 'consumer');
    await screen.findByRole('list', { name: 'Findings by severity' });
    expect(screen.queryByRole('heading', { name: 'Recent denials' })).toBeNull();
    expect(screen.queryByRole('heading', { name: 'Dead-lettered events' })).toBeNull();
  });

  it('download navigates to the single-use link; the page never fetches the bytes', async () => {
    state.current.artifacts = [makeArtifact({ id: 'a-ok', status: 'approved' })];
    const clicked: string[] = [];
    const spy = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(this.getAttribute('href') ?? '');
    });
    try {
      await renderApp('/artifacts/a-ok', 'consumer');
      await userEvent.setup().click(await screen.findByRole('button', { name: 'Download' }));
      await vi.waitFor(() => expect(clicked).toEqual(['/api/download-links/tok-a-ok']));
      expect(state.current.downloadFetched).toBe(false);
    } finally {
      spy.mockRestore();
    }
  });

  it('the copyable curl command keeps a hostile filename one word: pasted, it runs nothing', async () => {
    const filename = "report$(id>pwned.txt)`id`'.tar.gz";
    state.current.artifacts = [makeArtifact({ id: 'a-evil', status: 'approved', filename })];
    await renderApp('/artifacts/a-evil', 'consumer');
    const command = (await screen.findByText(/^curl /, {}, { timeout: 10_000 })).textContent ?? '';
    // What a shell makes of the command's words after `-o` (curl itself is not run), in an
    // empty directory the injected `id>pwned.txt` would write to.
    const cwd = mkdtempSync(join(tmpdir(), 'arca-shell-'));
    const words = execFileSync('sh', ['-c', `set -- ${command.split(' -o ')[1]}; printf '%s\\n' "$@"`], { cwd, encoding: 'utf8' });
    expect(readdirSync(cwd)).toEqual([]);
    expect(words.split('\n')[0]).toBe(filename);
  });
});
