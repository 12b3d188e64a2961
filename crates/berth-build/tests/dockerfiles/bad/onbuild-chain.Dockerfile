# error: 2:9: chaining ONBUILD
ONBUILD ONBUILD RUN true
