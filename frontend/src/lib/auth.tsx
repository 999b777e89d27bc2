/** The signed-in identity for React: one provider over the one Session (lib/session.ts). */
import { createContext, useContext, useEffect, useMemo, useSyncExternalStore, type ReactNode } from 'react';
import type { Permission } from '@/api/types';
import { getSession, type Identity, type Session, type SessionSnapshot } from './session';
import { useQueryClient } from '@tanstack/react-query';

interface AuthValue extends SessionSnapshot {
  session: Session;
  login: (username: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
  can: (permission: Permission) => boolean;
}

const AuthContext = createContext<AuthValue | null>(null);

export function can(identity: Identity | null, permission: Permission): boolean {
  return identity?.permissions.includes(permission) ?? false;
}

export function AuthProvider({ children, session = getSession(), restore = true }: { children: ReactNode; session?: Session; restore?: boolean }) {
  const snapshot = useSyncExternalStore(session.subscribe, session.getSnapshot);
  const queryClient = useQueryClient();
  useEffect(() => {
    if (restore && snapshot.status === 'restoring') void session.restore();
    // run once per session
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [session, restore]);
  // Whatever was cached belongs to the previous user.
  useEffect(() => {
    if (snapshot.status === 'signed-out') queryClient.clear();
  }, [snapshot.status, queryClient]);
  const value = useMemo<AuthValue>(
    () => ({
      ...snapshot,
      session,
      login: (u, p) => session.login(u, p),
      logout: () => session.logout(),
      can: (permission) => can(snapshot.identity, permission),
    }),
    [snapshot, session],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}

export function useCan(permission: Permission): boolean {
  return useAuth().can(permission);
}
