FROM busybox:latest

# Comments and blank lines inside a continuation are dropped.
RUN set -e; \
    # install
    echo one; \

    echo two

    # Indented instructions and lower-case keywords are fine.
    run echo indented
ENTRYPOINT ["/bin/sh", \
            "-c"]
CMD ["echo", "a \"quoted\" word", "back\\slash"]
ENV A="quoted value" B='single $quoted' C=escaped\ space D=$A-${B}
