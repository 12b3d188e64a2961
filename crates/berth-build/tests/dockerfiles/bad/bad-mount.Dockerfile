# error: 4:5: unexpected key "colour"
FROM busybox:latest
RUN --mount=type=cache,target=/a \
    --mount=type=bind,target=/x,colour=red true
