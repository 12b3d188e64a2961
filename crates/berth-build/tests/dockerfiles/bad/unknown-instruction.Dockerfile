# error: 3:1: unknown instruction: COPPY
FROM busybox:latest
COPPY a b
