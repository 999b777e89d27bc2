import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import { renderApp } from '@/testing/render';
import { makeArtifact, state } from '@/testing/mock-api';

function navLabels() {
  const nav = screen.getByRole('navigation', { name: 'Main' });
  return within(nav)
    .getAllByRole('link')
    .map((a) => a.textContent);
}

describe('role-based navigation', () => {
  it('an admin sees every page', async () => {
    await renderApp('/artifacts', 'admin');
    await screen.findByRole('heading', { name: 'Artifacts' });
    expect(navLabels()).toEqual(['Dashboard', 'Artifacts', 'Upload', 'Policy & exceptions', 'Users', 'API tokens', 'Audit log']);
  });

  it('a consumer never sees upload or admin controls', async () => {
    state.current.artifacts = [makeArtifact({ id: 'a-q', status: 'quarantined', status_reason: 'HIGH CVE-2024-0003 in curl' }), makeArtifact({ id: 'a-ok' })];
    await renderApp('/artifacts', 'consumer');
    await screen.findByRole('heading', { name: 'Artifacts' });
    expect(navLabels()).toEqual(['Dashboard', 'Artifacts', 'API tokens']);
    expect(screen.queryByRole('link', { name: /^upload( the first artifact)?$/i })).toBeNull();
    expect(screen.queryByRole('button', { name: /^upload( the first artifact)?$/i })).toBeNull();
    // Consumers see approved artifacts only.
    await screen.findByRole('link', { name: makeArtifactName('a-ok') });
  });

  it('a forced admin URL shows "Not allowed" (and loads nothing of that page)', async () => {
    await renderApp('/users', 'consumer');
    expect(await screen.findByRole('heading', { name: 'Not allowed' })).toBeInTheDocument();
    expect(screen.getByText(/user management/)).toBeInTheDocument();
    expect(screen.queryByRole('table', { name: 'Users' })).toBeNull();
  });

  it('an auditor reaches the audit log but not uploads', async () => {
    const { router } = await renderApp('/audit', 'auditor');
    expect(await screen.findByRole('heading', { name: 'Audit log' })).toBeInTheDocument();
    expect(navLabels()).toContain('Audit log');
    expect(navLabels()).not.toContain('Upload');
    await router.navigate('/upload');
    expect(await screen.findByRole('heading', { name: 'Not allowed' })).toBeInTheDocument();
  });

  it('a consumer on a blocked artifact sees no admin action and the policy reason on the download button', async () => {
    state.current.artifacts = [makeArtifact({ id: 'a-q', status: 'quarantined', status_reason: 'HIGH CVE-2024-0003 in curl' })];
    // Consumers cannot list it, but a direct link to one they can read works the same way.
    state.current.role = 'consumer';
    await renderApp('/artifacts/a-q', 'consumer');
    const download = await screen.findByRole('button', { name: 'Download' });
    expect(download).toBeDisabled();
    expect(screen.getAllByText(/HIGH CVE-2024-0003 in curl/).length).toBeGreaterThan(0);
    expect(screen.queryByRole('group', { name: 'Administration' })).toBeNull();
    expect(screen.queryByRole('button', { name: /release|delete|rescan|exception/i })).toBeNull();
  });

  it('an admin gets the release action on a quarantined artifact', async () => {
    state.current.artifacts = [makeArtifact({ id: 'a-q', status: 'quarantined', status_reason: 'secret found' })];
    await renderApp('/artifacts/a-q', 'admin');
    const group = await screen.findByRole('group', { name: 'Administration' });
    expect(within(group).getByRole('button', { name: 'Release' })).toBeInTheDocument();
    expect(within(group).getByRole('button', { name: 'Delete' })).toBeInTheDocument();
  });

  it('without a session the sign-in page is shown, and a lockout says how long to wait', async () => {
    await renderApp('/artifacts', null);
    const { default: userEvent } = await import('@testing-library/user-event');
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText(/Username/), 'admin');
    await user.type(screen.getByLabelText(/Password/), 'locked');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText('Account temporarily locked')).toBeInTheDocument();
    await waitFor(() => expect(screen.getByRole('timer')).toHaveTextContent(/try again in \d+ s/));
  });
});

function makeArtifactName(id: string) {
  return state.current.artifacts.find((a) => a.id === id)!.name;
}
