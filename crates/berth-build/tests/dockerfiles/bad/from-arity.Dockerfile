# error: 2:1: FROM requires either one or three arguments
FROM busybox AS
