import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { NewUser, User, UserUpdate } from '@/api/types';

export function useUsers() {
  return useQuery({ queryKey: ['users'], queryFn: ({ signal }) => apiClient.get<User[]>('/api/users', undefined, signal) });
}

export function useCreateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: NewUser) => apiClient.post<User>('/api/users', body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['users'] }),
  });
}

export function useUpdateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, update }: { id: string; update: UserUpdate }) => apiClient.put<User>(`/api/users/${id}`, update),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['users'] }),
  });
}
