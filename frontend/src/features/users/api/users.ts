import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { NewUser, UserUpdate } from '@/api/types';

export function useUsers() {
  return useQuery({ queryKey: ['users'], queryFn: ({ signal }) => apiClient.get('/api/users', { signal }) });
}

export function useCreateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: NewUser) => apiClient.post('/api/users', { body }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['users'] }),
  });
}

export function useUpdateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, update }: { id: string; update: UserUpdate }) => apiClient.put('/api/users/{id}', { params: { id }, body: update }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['users'] }),
  });
}
