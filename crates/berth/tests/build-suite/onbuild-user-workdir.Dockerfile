# ONBUILD triggers run in the stage built on the stage that declares them; USER by name;
# WORKDIR relative and with a variable.
FROM localhost/busybox:latest AS base
ONBUILD RUN echo triggered > /onbuild
ONBUILD ENV TRIGGERED=yes
ENV DIR=/work

FROM base
WORKDIR $DIR
WORKDIR sub
USER user
RUN echo "$TRIGGERED $(id -un)" > /tmp/who
CMD echo shell form cmd
