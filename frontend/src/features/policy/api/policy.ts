import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { NewException, Policy, PolicyException } from '@/api/types';

export function usePolicy() {
  return useQuery({ queryKey: ['policy'], queryFn: ({ signal }) => apiClient.get<Policy>('/api/policy', undefined, signal) });
}

export function useExceptions(all: boolean) {
  return useQuery({
    queryKey: ['exceptions', all],
    queryFn: ({ signal }) => apiClient.get<PolicyException[]>('/api/exceptions', { all: all ? 'true' : undefined }, signal),
  });
}

export function useCreateException() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: NewException) => apiClient.post<PolicyException>('/api/exceptions', body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['exceptions'] }),
  });
}

export function useRevokeException() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => apiClient.delete<void>(`/api/exceptions/${id}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['exceptions'] }),
  });
}
