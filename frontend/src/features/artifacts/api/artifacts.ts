import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { apiClient } from '@/lib/api-client';
import type { ArtifactSort, SortOrder } from '@/api/types';

export interface ArtifactQuery {
  q: string;
  status: string;
  label: string;
  page: number;
  per_page: number;
  sort: ArtifactSort;
  order: SortOrder;
}

export const artifactKeys = {
  all: ['artifacts'] as const,
  list: (q: ArtifactQuery) => ['artifacts', 'list', q] as const,
};

export function useArtifacts(query: ArtifactQuery) {
  return useQuery({
    queryKey: artifactKeys.list(query),
    queryFn: ({ signal }) =>
      apiClient.get('/api/artifacts', {
        query: {
          q: query.q,
          status: query.status,
          label: query.label,
          page: query.page,
          per_page: query.per_page,
          sort: query.sort,
          order: query.order,
        },
        signal,
      }),
    placeholderData: keepPreviousData,
  });
}
