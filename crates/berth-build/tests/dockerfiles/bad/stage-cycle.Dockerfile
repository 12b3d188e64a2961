# error: 5:1: stages depend on each other in a cycle: one -> two -> one
FROM busybox:latest AS one
COPY --from=two /b /b
FROM busybox:latest AS two
COPY --from=one /a /a
