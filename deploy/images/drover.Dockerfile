# The drover image from a binary built on the host (deploy/images/build-drover), for
# machines that cannot pull `rust` or `debian:bookworm-slim`. The result matches
# deploy/Dockerfile's: Debian bookworm, ca-certificates and curl, /usr/local/bin/drover.
ARG BASE=drover/base:bookworm
FROM ${BASE}
ARG BINARY_SHA256=unknown
LABEL org.opencontainers.image.title="drover" \
      org.opencontainers.image.description="drover job engine: every role in one binary (drover api | executor | distributor)" \
      drover.binary.sha256="${BINARY_SHA256}"
COPY drover /usr/local/bin/drover
WORKDIR /var/lib/drover
ENTRYPOINT ["/usr/local/bin/drover"]
CMD ["--help"]
