# syntax=docker/dockerfile:1.7
# The SPA: built with Vite, served by nginx (unprivileged image: uid 101, listens on 8080)
# with frontend/nginx.conf in its cluster shape: none of its optional arca/*.map includes,
# so /api answers 404 here (the gateway routes /api to the functions) and connect-src is
# 'self' (presigned transfers go through the gateway, same origin).
#   docker build -f docker/web.Dockerfile -t kind.local/arca-web:TAG .
# DIST=prebuilt takes the built app from the build context's frontend/dist instead (the lab
# cluster of tools/lab, after scripts/web.sh build).
ARG DIST=build

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM scratch AS prebuilt
COPY frontend/dist /src/frontend/dist

FROM ${DIST} AS dist

FROM nginxinc/nginx-unprivileged:1.28.0-alpine AS web
COPY frontend/nginx.conf /etc/nginx/nginx.conf
COPY --from=dist /src/frontend/dist /usr/share/nginx/html
USER 101:101
EXPOSE 8080
# no entrypoint scripts: they rewrite files under /etc/nginx, which is read-only at run time
ENTRYPOINT ["nginx"]
CMD ["-g", "daemon off;"]
