# error: 2:1: HEALTHCHECK NONE takes no arguments
HEALTHCHECK NONE CMD true
