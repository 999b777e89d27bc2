/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath, URL } from 'node:url';

// The dev server proxies /api to a local `arca serve` (ARCA_DEV_API, default https://127.0.0.1:8443).
const api = process.env.ARCA_DEV_API ?? 'https://127.0.0.1:8443';

export default defineConfig({
  plugins: [react()],
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  build: {
    target: 'es2022',
    sourcemap: false,
    // No inline <script> or modulepreload polyfill: the CSP is script-src 'self'.
    modulePreload: { polyfill: false },
    manifest: true,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 800,
  },
  worker: { format: 'es' },
  server: { proxy: { '/api': { target: api, changeOrigin: false, secure: false } } },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/testing/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
    testTimeout: 15000,
  },
});
