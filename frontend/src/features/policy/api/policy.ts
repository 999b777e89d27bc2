import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { NewException } from '@/api/types';

export function usePolicy() {
  return useQuery({ queryKey: ['policy'], queryFn: ({ signal }) => apiClient.get('/api/policy', { signal }) });
}

export function useExceptions(all: boolean) {
  return useQuery({
    queryKey: ['exceptions', all],
    queryFn: ({ signal }) => apiClient.get('/api/exceptions', { query: { all }, signal }),
  });
}

export function useCreateException() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: NewException) => apiClient.post('/api/exceptions', { body }),
    // Exceptions re-evaluate the artifacts they cover.
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: ['exceptions'] }), qc.invalidateQueries({ queryKey: ['artifacts'] })]),
  });
}

export function useRevokeException() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => apiClient.delete('/api/exceptions/{id}', { params: { id } }),
    // Exceptions re-evaluate the artifacts they cover.
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: ['exceptions'] }), qc.invalidateQueries({ queryKey: ['artifacts'] })]),
  });
}
