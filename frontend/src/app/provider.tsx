import type { ReactNode } from 'react';
import { QueryClientProvider, type QueryClient } from '@tanstack/react-query';
import { AuthProvider } from '@/lib/auth';
import { queryClient as defaultQueryClient } from '@/lib/query-client';
import type { Session } from '@/lib/session';
import { NotifierProvider } from '@/components/Notifier';
import { ColorModeProvider } from './color-mode';

export function AppProvider({
  children,
  queryClient = defaultQueryClient,
  session,
  restore = true,
}: {
  children: ReactNode;
  queryClient?: QueryClient;
  session?: Session;
  restore?: boolean;
}) {
  return (
    <ColorModeProvider>
      <QueryClientProvider client={queryClient}>
        <AuthProvider {...(session ? { session } : {})} restore={restore}>
          <NotifierProvider>{children}</NotifierProvider>
        </AuthProvider>
      </QueryClientProvider>
    </ColorModeProvider>
  );
}
