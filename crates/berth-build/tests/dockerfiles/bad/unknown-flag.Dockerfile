# error: 3:15: unknown flag: --chmode
FROM busybox:latest
COPY --link   --chmode=0644 a /b
