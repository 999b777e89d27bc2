# syntax=docker/dockerfile:1.7
# One image per Arca function (binary arca-fn-<FUNCTION>, docs/cluster.md):
#   docker build -f docker/function.Dockerfile --build-arg FUNCTION=auth -t kind.local/arca-auth:TAG .
# The build stage compiles every function of functions/ once: it does not depend on
# FUNCTION, so the nine image builds share its cached layer and only the last stage differs.
# The scan image adds Trivy on top of this one (docker/scan.Dockerfile).
#
# Base images are pinned by exact tag (no digest recorded here: pin digests when you
# first pull, e.g. `docker buildx imagetools inspect rust:1.95.0-bookworm`). distroless
# publishes no version tags; its "nonroot" tag is the non-root variant of debian12.
#
# BINARIES=prebuilt takes the binaries from the build context's prebuilt/ folder instead of
# compiling them (the lab cluster of tools/lab builds its images from host-built binaries):
#   docker build -f docker/function.Dockerfile --build-arg BINARIES=prebuilt --build-arg FUNCTION=auth CONTEXT
# where CONTEXT/prebuilt/arca-fn-auth exists.
ARG BINARIES=build

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# the whole workspace: cargo reads every member's manifest to resolve Cargo.lock
COPY Cargo.toml Cargo.lock ./
# (every member of Cargo.toml's [workspace]; deploy-check fails when one is missing)
COPY shared shared
COPY client client
COPY functions functions
COPY cli cli
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eu; \
    packages=""; \
    for dir in functions/*/; do packages="$packages -p arca-fn-$(basename "$dir")"; done; \
    cargo build --release --locked $packages; \
    mkdir -p /out; \
    find target/release -maxdepth 1 -type f -name 'arca-fn-*' -perm -u+x -exec cp {} /out/ \;

FROM scratch AS prebuilt
COPY prebuilt/ /out/

FROM ${BINARIES} AS binaries

# Runtime: glibc + CA certificates, no shell, no package manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS function
ARG FUNCTION
COPY --from=binaries /out/arca-fn-${FUNCTION} /usr/local/bin/arca-function
USER 65532:65532
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/arca-function"]
