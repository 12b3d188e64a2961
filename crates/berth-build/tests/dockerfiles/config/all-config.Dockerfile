# Every instruction that changes the image config, for comparison with buildah bud.
ARG FLAVOUR=plain
FROM scratch AS base
ARG VERSION=1.0
ARG FLAVOUR
ENV APP_VERSION=$VERSION HOME=/root PATH=/opt/bin:$PATH
ENV LEGACY two words here
ENV FLAVOUR=${FLAVOUR:-none} EMPTY= DEFAULTED=${UNSET_VAR:-fallback} ALT=${VERSION:+has-version}
LABEL version=$VERSION "name with space"="v a l" quoted='single $VERSION' \
      escaped=a\ b
EXPOSE 80 443/tcp 53/udp 7000-7002
VOLUME ["/data", "/logs"]
VOLUME /cache
WORKDIR /srv
WORKDIR app/../app2
USER app:${VERSION}
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s --start-period=1s --retries=4 CMD ["probe", "--fast"]
# CMD before SHELL: Buildah ignores SHELL for CMD's shell form, Docker (and berth) use it.
CMD run --flag
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ONBUILD ENV TRIGGERED=yes
ONBUILD LABEL triggered=$APP_VERSION
MAINTAINER Someone <someone@example.invalid>

FROM base AS child
ENTRYPOINT ["/entry"]
ENV HOME=/home/app
LABEL version=2
HEALTHCHECK NONE
WORKDIR sub
