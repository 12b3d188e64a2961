# The instructions that set the image config, and a RUN under them.
FROM localhost/busybox:latest
ENV A=1 B="two words" PATH=/opt/bin:$PATH
ENV LEGACY legacy form value
LABEL one=1 "two words"="v w" from.env=$A
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data"]
VOLUME /logs /cache
WORKDIR /srv
WORKDIR app
USER 1000:1000
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["/bin/true"]
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "$A $B $LEGACY as $(id -u) in $(pwd)" > /tmp/seen
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
