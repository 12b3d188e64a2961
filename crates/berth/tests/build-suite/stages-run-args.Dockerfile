# FROM with AS and a global ARG, RUN in shell and exec form, ARG in global and stage scope.
ARG BASE=localhost/busybox:latest
ARG GLOBAL=global-default
FROM $BASE AS first
ARG GLOBAL
ARG LOCAL=local-default
RUN echo "shell $GLOBAL $LOCAL" > /shell-form && mkdir -p /d/sub && echo x > /d/sub/f && rm /etc/group
RUN ["/bin/sh", "-c", "echo exec-form > /exec-form && chmod 600 /exec-form && ln -s /shell-form /link"]
RUN rm -r /d && mkdir /d && echo y > /d/g && chown 1000:1000 /d/g

FROM first AS second
# Neither ARG is declared in this stage: both are empty here.
RUN echo "[$GLOBAL] [${LOCAL:-unset}]" > /second
