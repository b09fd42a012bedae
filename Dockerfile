# Images of weft (the controller and operator CLI) and weft-proxy (the
# sidecar): their static binaries on an empty base (FROM scratch), run as
# the unprivileged user weft (65532), with the CA certificates the binaries
# use to verify public endpoints (a scheduler's API, an OTLP collector).
# No base image is pulled.
#
# The build context is the image directory `make release` prepares,
# bin/release/image: linux_amd64/ and linux_arm64/ hold the binaries,
# rootfs/ the few files of the base. `make images` builds both targets
# for both architectures with buildah; with a registry and Docker:
#
#   make release
#   docker buildx build --platform linux/amd64,linux/arm64 --target weft \
#     -t REGISTRY/weft:VERSION --push -f Dockerfile bin/release/image
#   docker buildx build --platform linux/amd64,linux/arm64 --target weft-proxy \
#     -t REGISTRY/weft-proxy:VERSION --push -f Dockerfile bin/release/image
#
# (podman build and buildah bud take the same flags; give --build-arg
# TARGETARCH=arm64 where the builder does not set it.)

FROM scratch AS base
ARG VERSION=dev
# /etc/passwd and /etc/group naming weft (65532), the CA certificates,
# /tmp (1777); /var/lib/weft, the working and data directory, owned by
# weft.
COPY rootfs/ /
COPY --chown=65532:65532 data/ /var/lib/weft/
USER 65532:65532
WORKDIR /var/lib/weft
ENV HOME=/var/lib/weft \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.source="https://github.com/weftmesh/weft" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.vendor="Weft"

FROM base AS weft-proxy
ARG TARGETARCH=amd64
COPY linux_${TARGETARCH}/weft-proxy /usr/bin/weft-proxy
LABEL org.opencontainers.image.title="weft-proxy" \
      org.opencontainers.image.description="The Weft sidecar proxy"
# The admin endpoints (keep them on loopback) and the mesh port.
EXPOSE 15000 15001
ENTRYPOINT ["/usr/bin/weft-proxy"]

FROM base AS weft
ARG TARGETARCH=amd64
COPY linux_${TARGETARCH}/weft /usr/bin/weft
LABEL org.opencontainers.image.title="weft" \
      org.opencontainers.image.description="The Weft controller and operator CLI"
# The sidecar API and the admin API.
EXPOSE 7400 7401
ENTRYPOINT ["/usr/bin/weft"]
CMD ["--help"]
