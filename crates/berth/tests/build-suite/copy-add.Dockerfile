# COPY from the context and from a stage, with --chown and --chmod; ADD of files and archives.
FROM localhost/busybox:latest AS files
RUN mkdir -p /out/sub && echo one > /out/one && echo two > /out/sub/two && ln -s one /out/link && chmod 750 /out/sub

FROM localhost/busybox:latest
COPY --from=files /out /copied/
COPY --from=files --chown=1000:1000 /out/one /owned-one
COPY --from=files --chmod=600 /out/sub/two /moded-two
COPY --chown=7:8 --chmod=640 a.txt b.txt /ctx/
COPY src /src-dir/
ADD a.tar /tar-extracted/
ADD a.tar.gz /gz-extracted/
ADD --chown=5:6 b.txt /added-b
