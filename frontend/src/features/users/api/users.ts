import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { NewUser, User, UserUpdate } from '@/api/types';
import { isProblem } from '@/lib/problem';

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
    mutationFn: async ({ id, update }: { id: string; update: UserUpdate }) => {
      try {
        return await apiClient.put<User>(`/api/users/${id}`, update);
      } catch (e) {
        // Servers before `revoke_api_tokens` refuse the unknown field: say so, retry without it.
        if (isProblem(e) && update.revoke_api_tokens !== undefined && /revoke_api_tokens|unknown field/.test(e.detail)) {
          const { revoke_api_tokens: _ignored, ...rest } = update;
          const user = await apiClient.put<User>(`/api/users/${id}`, rest);
          throw Object.assign(new Error('Saved, but this server cannot revoke API tokens yet: revoke them on the API tokens page of that user.'), { saved: user });
        }
        throw e;
      }
    },
    onSuccess: () => qc.invalidateQueries({ queryKey: ['users'] }),
  });
}
