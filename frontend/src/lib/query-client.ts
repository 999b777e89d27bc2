import { QueryClient } from '@tanstack/react-query';
import { isProblem } from './problem';

/** Retries network trouble and 5xx twice; never a 4xx (the answer will not change). */
function shouldRetry(failureCount: number, error: unknown): boolean {
  if (isProblem(error) && error.status >= 400 && error.status < 500) return false;
  return failureCount < 2;
}

export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: { retry: shouldRetry, staleTime: 10_000, refetchOnWindowFocus: true },
      mutations: { retry: false },
    },
  });
}

/** The one QueryClient of the page. */
export const queryClient = createQueryClient();
