# error: 2:1: RUN before the first FROM
RUN echo too early
FROM busybox:latest
