import { useCallback, useMemo } from 'react';
import { useSearchParams } from 'react-router';
import type { ArtifactSort, SortOrder } from '@/api/types';
import type { ArtifactQuery } from '../api/artifacts';

const SORTS: ArtifactSort[] = ['created_at', 'name', 'version', 'size', 'status'];
export const PAGE_SIZES = [25, 50, 100, 200];

/** The list's filters, sort and page, kept in the URL so a view can be shared. */
export function useArtifactQuery() {
  const [params, setParams] = useSearchParams();
  const query = useMemo<ArtifactQuery>(() => {
    const sort = params.get('sort') as ArtifactSort | null;
    const perPage = Number(params.get('per_page'));
    return {
      q: params.get('q') ?? '',
      status: params.get('status') ?? '',
      label: params.get('label') ?? '',
      page: Math.max(1, Number(params.get('page')) || 1),
      per_page: PAGE_SIZES.includes(perPage) ? perPage : 25,
      sort: sort && SORTS.includes(sort) ? sort : 'created_at',
      order: params.get('order') === 'asc' ? 'asc' : 'desc',
    };
  }, [params]);

  const update = useCallback(
    (patch: Partial<ArtifactQuery>) => {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          for (const [k, v] of Object.entries(patch)) {
            const isDefault =
              v === '' ||
              (k === 'page' && v === 1) ||
              (k === 'per_page' && v === 25) ||
              (k === 'sort' && v === 'created_at') ||
              (k === 'order' && v === 'desc');
            if (isDefault) next.delete(k);
            else next.set(k, String(v));
          }
          // A new filter starts at the first page.
          if (!('page' in patch)) next.delete('page');
          return next;
        },
        { replace: true },
      );
    },
    [setParams],
  );

  const toggleSort = useCallback(
    (sort: ArtifactSort) => {
      const order: SortOrder = query.sort === sort ? (query.order === 'asc' ? 'desc' : 'asc') : sort === 'created_at' ? 'desc' : 'asc';
      update({ sort, order });
    },
    [query.sort, query.order, update],
  );

  const filtered = query.q !== '' || query.status !== '' || query.label !== '';
  return { query, update, toggleSort, filtered, clear: () => setParams(new URLSearchParams(), { replace: true }) };
}
