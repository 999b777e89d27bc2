/**
 * A tiny stand-in for `arca serve --web-dir` / the nginx image: serves dist/ with the
 * headers nginx.conf sets (CSP, caching, SPA fallback) and proxies /api to Arca,
 * keeping the Host header so that Arca's upload URLs point here.
 *
 *   node e2e/serve-dist.mjs DIST_DIR LISTEN_PORT API_ORIGIN
 */
import { createServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';

export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};

export function startStaticServer({ dist, port = 0, api, csp = CSP }) {
  const root = resolve(dist);
  const apiUrl = new URL(api);
  const send = apiUrl.protocol === 'https:' ? httpsRequest : httpRequest;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/api/') || url.pathname === '/api') {
      const upstream = send(
        {
          hostname: apiUrl.hostname,
          port: apiUrl.port,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, 'x-forwarded-proto': 'http' },
          rejectUnauthorized: false,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ title: 'Bad Gateway', status: 502, code: 'upstream_unavailable', detail: 'Arca did not answer' }));
      });
      req.pipe(upstream);
      return;
    }
    const security = {
      'Content-Security-Policy': csp,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
    };
    let path = normalize(join(root, decodeURIComponent(url.pathname)));
    if (!path.startsWith(root)) {
      res.writeHead(400, security).end();
      return;
    }
    let file = existsSync(path) && statSync(path).isFile() ? path : null;
    if (!file) {
      // SPA fallback, except for missing assets.
      if (url.pathname.startsWith('/assets/')) {
        res.writeHead(404, { ...security, 'content-type': 'text/plain' }).end('not found');
        return;
      }
      file = join(root, 'index.html');
    }
    const isIndex = file.endsWith('index.html');
    res.writeHead(200, {
      ...security,
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Cache-Control': isIndex ? 'no-store' : url.pathname.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise) => server.listen(port, '127.0.0.1', () => resolvePromise(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dist = 'dist', port = '8080', api = 'http://127.0.0.1:8443'] = process.argv.slice(2);
  startStaticServer({ dist, port: Number(port), api }).then((s) => console.log(`serving ${dist} on http://127.0.0.1:${s.address().port}, /api → ${api}`));
}
