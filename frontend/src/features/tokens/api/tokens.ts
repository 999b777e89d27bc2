import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { CreateToken } from '@/api/types';

export function useTokens() {
  return useQuery({ queryKey: ['tokens'], queryFn: ({ signal }) => apiClient.get('/api/tokens', { signal }) });
}

export function useCreateToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateToken) => apiClient.post('/api/tokens', { body }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tokens'] }),
  });
}

export function useRevokeToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => apiClient.delete('/api/tokens/{id}', { params: { id } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tokens'] }),
  });
}
