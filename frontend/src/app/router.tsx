import { useState } from 'react';
import { createBrowserRouter, Outlet, RouterProvider, useRouteError, type RouteObject } from 'react-router';
import type { Permission } from '@/api/types';
import { useAuth } from '@/lib/auth';
import { Loading, NotAllowed, NotFound } from '@/components/Pages';
import { ProblemAlert } from '@/components/ProblemAlert';
import { LoginPage } from '@/features/auth/components/LoginPage';
import { AppLayout } from './layout/AppLayout';

/** Signed-in users get the app; everyone else the sign-in page at the same URL. */
function Root() {
  const { status } = useAuth();
  if (status === 'restoring') return <Loading label="Restoring your session" />;
  if (status === 'signed-out') return <LoginPage />;
  return <AppLayout />;
}

/** A route the role may not use shows "Not allowed" (its code is never loaded). */
function Guard({ permission, what }: { permission: Permission; what: string }) {
  const { can } = useAuth();
  return can(permission) ? <Outlet /> : <NotAllowed what={what} />;
}

function RouteError() {
  const error = useRouteError();
  return (
    <div style={{ padding: 24 }}>
      <h1>Something went wrong</h1>
      <ProblemAlert error={error instanceof Error ? error : new Error('This page could not be shown. Reload to try again.')} />
    </div>
  );
}

function guarded(path: string, permission: Permission, what: string, children: RouteObject[]): RouteObject {
  return { path, element: <Guard permission={permission} what={what} />, children };
}

export const routes: RouteObject[] = [
  {
    path: '/',
    element: <Root />,
    errorElement: <RouteError />,
    hydrateFallbackElement: <Loading />,
    children: [
      guarded('', 'artifacts_read', 'the dashboard', [
        { index: true, lazy: () => import('./routes/dashboard').then((m) => ({ Component: m.Component })) },
      ]),
      guarded('artifacts', 'artifacts_read', 'artifacts', [
        { index: true, lazy: () => import('./routes/artifacts').then((m) => ({ Component: m.Component })) },
        { path: ':id', lazy: () => import('./routes/artifact-detail').then((m) => ({ Component: m.Component })) },
      ]),
      guarded('upload', 'artifacts_write', 'uploads', [
        { index: true, lazy: () => import('./routes/upload').then((m) => ({ Component: m.Component })) },
      ]),
      guarded('policy', 'artifacts_manage', 'policy exceptions', [
        { index: true, lazy: () => import('./routes/policy').then((m) => ({ Component: m.Component })) },
      ]),
      guarded('users', 'users_manage', 'user management', [
        { index: true, lazy: () => import('./routes/users').then((m) => ({ Component: m.Component })) },
      ]),
      guarded('tokens', 'tokens_manage', 'API tokens', [
        { index: true, lazy: () => import('./routes/tokens').then((m) => ({ Component: m.Component })) },
      ]),
      guarded('audit', 'audit_read', 'the audit log', [
        { index: true, lazy: () => import('./routes/audit').then((m) => ({ Component: m.Component })) },
      ]),
      { path: '*', element: <NotFound /> },
    ],
  },
];

export function AppRouter() {
  const [router] = useState(() => createBrowserRouter(routes));
  return <RouterProvider router={router} />;
}
