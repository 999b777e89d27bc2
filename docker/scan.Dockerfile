# syntax=docker/dockerfile:1.7
# The scan function's image: the function image for FUNCTION=scan plus Trivy 0.74.0 (the
# version scripts/tools.sh pins for the tests), copied from Aqua's release image.
#   docker build -f docker/function.Dockerfile --build-arg FUNCTION=scan -t kind.local/arca-scan-base:TAG .
#   docker build -f docker/scan.Dockerfile --build-arg BASE=kind.local/arca-scan-base:TAG -t kind.local/arca-scan:TAG .
# Trivy runs offline (--skip-db-update, --offline-scan) on the DB in ARCA_TRIVY_CACHE_DIR.
ARG BASE=kind.local/arca-scan-base:0.1.0

FROM aquasec/trivy:0.74.0 AS trivy

FROM ${BASE}
COPY --from=trivy /usr/local/bin/trivy /usr/local/bin/trivy
USER 65532:65532
ENV ARCA_TRIVY=/usr/local/bin/trivy
