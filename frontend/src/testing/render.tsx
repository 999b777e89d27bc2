import { render } from '@testing-library/react';
import { createMemoryRouter, RouterProvider } from 'react-router';
import type { Role } from '@/api/types';
import { AppProvider } from '@/app/provider';
import { routes } from '@/app/router';
import { createQueryClient } from '@/lib/query-client';
import { Session, setSession } from '@/lib/session';
import { state } from './mock-api';

/** A session with no lock and no channel (one tab), talking to the MSW API. */
export function testSession(): Session {
  const session = new Session({ locks: null, channel: null, helloWaitMs: 0 });
  setSession(session);
  return session;
}

/** Renders the whole app (real providers, real routes) signed in as `role` at `url`. */
export async function renderApp(url: string, role: Role | null = 'admin') {
  const session = testSession();
  if (role) {
    state.current.role = role;
    await session.login(role, 'correct-horse-battery-staple');
  } else {
    await session.restore();
  }
  const router = createMemoryRouter(routes, { initialEntries: [url] });
  const utils = render(
    <AppProvider session={session} queryClient={createQueryClient()} restore={false}>
      <RouterProvider router={router} />
    </AppProvider>,
  );
  return { ...utils, router, session };
}
