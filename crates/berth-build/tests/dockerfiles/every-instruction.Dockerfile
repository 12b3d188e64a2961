# syntax=docker/dockerfile:1.7
# check=skip=JSONArgsRecommended
ARG BASE=busybox
ARG TAG=latest
FROM --platform=linux/amd64 ${BASE}:${TAG} AS base
MAINTAINER Berth Maintainers <maintainers@example.invalid>
LABEL version="1.0" description="every instruction" "with space"=yes
LABEL legacy old style label
ENV HOME=/home/user PATH=/usr/local/bin:$PATH
ENV OLDSTYLE value with spaces
ARG BASE
ARG USERNAME=user UID=1000
RUN --network=none --security=sandbox echo "offline as $USERNAME"
RUN ["/bin/sh", "-c", "echo exec form"]
RUN --mount=type=secret,id=token,target=/run/secrets/token,required=true,mode=0400,uid=0,gid=0 \
    --mount=type=secret,id=aws,env=AWS_KEY \
    --mount=type=tmpfs,target=/scratch,size=64m \
    --mount=type=bind,source=scripts,target=/scripts,readonly \
    --mount=type=cache,id=apk,target=/var/cache/apk,sharing=private,uid=${UID} \
    --mount=type=ssh,id=default,required=false \
    sh /scripts/setup.sh
ADD --chown=${UID}:${UID} --chmod=0644 files/a.txt files/b.txt /opt/files/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.invalid/release.tar.gz /opt/
ADD --keep-git-dir=true https://example.invalid/repo.git#main /src/repo
ADD vendor.tar.gz /opt/vendor/
COPY --link --chown=user:user --chmod=u=rwX,go=rX ["conf/app.conf", "/etc/app/"]
COPY --parents --exclude=*.md docs/ /usr/share/doc/app/
COPY --from=busybox:latest /bin/busybox /bin/busybox2
EXPOSE 80 443/tcp 53/udp 8000-8010
VOLUME ["/data", "/logs"]
VOLUME /cache
WORKDIR /home/${USERNAME}
WORKDIR app
USER ${USERNAME}:${UID}
ONBUILD COPY . /app/src
ONBUILD RUN make -C /app/src
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=1m --timeout=10s --start-period=5s --start-interval=1s --retries=5 \
  CMD curl -fsS http://localhost/ || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/usr/local/bin/entry"]
CMD echo shell form cmd

FROM base AS child
HEALTHCHECK NONE
COPY --from=base /etc/passwd /tmp/passwd
ARG TARGETPLATFORM
ARG BUILDPLATFORM
LABEL built.for=$TARGETPLATFORM built.on=$BUILDPLATFORM
RUN --mount=type=bind,from=base,source=/etc,target=/base-etc ls /base-etc
CMD []
