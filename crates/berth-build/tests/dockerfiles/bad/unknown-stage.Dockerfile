# error: 5:1: COPY refers to unknown stage "biuld"
FROM busybox:latest AS build
RUN make
FROM scratch
COPY --from=biuld /out /out
