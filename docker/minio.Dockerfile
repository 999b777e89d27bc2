# syntax=docker/dockerfile:1.7
# MinIO's community edition is published as source only: build the server and the mc client
# from the Go module proxy, the server at the version scripts/tools.sh pins for the tests.
#   docker build -f docker/minio.Dockerfile --target server -t kind.local/arca-minio:v0.0.0-20260212201848-7aac2a2c5b7c .
#   docker build -f docker/minio.Dockerfile --target setup  -t kind.local/arca-minio-setup:v0.0.0-20250313080218-cf909e1063a9 .
# BINARIES=prebuilt takes minio and mc from the build context's prebuilt/ folder instead (the
# lab cluster of tools/lab, whose builds are the same versions from the same module proxy).
ARG BINARIES=build
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ARG MC_VERSION=v0.0.0-20250313080218-cf909e1063a9

FROM golang:1.26.8-bookworm AS build
ARG MINIO_VERSION
ARG MC_VERSION
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
RUN --mount=type=cache,target=/go/pkg/mod,sharing=locked \
    --mount=type=cache,target=/root/.cache/go-build,sharing=locked \
    go install "github.com/minio/minio@${MINIO_VERSION}" && \
    go install "github.com/minio/mc@${MC_VERSION}"

# The server: a static binary on distroless, uid 65532, no shell.
FROM scratch AS prebuilt
COPY prebuilt/ /go/bin/

FROM ${BINARIES} AS binaries

FROM gcr.io/distroless/static-debian12:nonroot AS server
COPY --from=binaries /go/bin/minio /usr/local/bin/minio
USER 65532:65532
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/minio"]
CMD ["server", "/data"]

# The setup Job's image: mc plus a POSIX shell for minio/setup.sh.
FROM alpine:3.22.1 AS setup
COPY --from=binaries /go/bin/mc /usr/local/bin/mc
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mc"]
