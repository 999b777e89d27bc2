import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { CreatedToken, CreateToken, TokenInfo } from '@/api/types';

export function useTokens() {
  return useQuery({ queryKey: ['tokens'], queryFn: ({ signal }) => apiClient.get<TokenInfo[]>('/api/tokens', undefined, signal) });
}

export function useCreateToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateToken) => apiClient.post<CreatedToken>('/api/tokens', body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tokens'] }),
  });
}

export function useRevokeToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => apiClient.delete<void>(`/api/tokens/${id}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tokens'] }),
  });
}
