/**
 * The typed client follows the server's OpenAPI document (src/api/schema.d.ts): a path,
 * parameter or body the document lacks does not compile. Each `@ts-expect-error` below
 * fails `npm run typecheck` if the error it expects goes away.
 */
import { describe, expect, it } from 'vitest';
import { apiClient, fillPath, type ApiAnswer } from './api-client';
import type { Artifact } from '@/api/types';

describe('typed API client', () => {
  it('fills path parameters, encoded', () => {
    expect(fillPath('/api/artifacts/{id}/parts', { id: 'a b/c' })).toBe('/api/artifacts/a%20b%2Fc/parts');
    expect(() => fillPath('/api/artifacts/{id}', {})).toThrow(/missing path parameter id/);
  });

  it('types answers from the document and rejects what it does not have', () => {
    // Compile-time checks only: these functions are never called.
    const checks = [
      () => apiClient.get('/api/artifacts/{id}', { params: { id: 'x' } }),
      // @ts-expect-error no such path
      () => apiClient.get('/api/artifact/{id}', { params: { id: 'x' } }),
      // @ts-expect-error a path with a parameter needs it
      () => apiClient.get('/api/artifacts/{id}'),
      // @ts-expect-error GET has no such operation on this path
      () => apiClient.get('/api/artifacts/{id}/download-link', { params: { id: 'x' } }),
      // @ts-expect-error the release body needs a justification
      () => apiClient.post('/api/artifacts/{id}/release', { params: { id: 'x' }, body: {} }),
      // @ts-expect-error `sort` is a query parameter, not `sorting`
      () => apiClient.get('/api/artifacts', { query: { sorting: 'name' } }),
    ];
    const artifact: ApiAnswer<'/api/artifacts/{id}', 'get'> = {} as Artifact;
    expect(checks).toHaveLength(6);
    expect(artifact).toBeDefined();
  });
});
