# escape=`
FROM busybox:latest
# The backtick continues lines, so backslashes are plain characters.
RUN echo C:\Windows\System32 `
    && echo done
ENV WINPATH=C:\Tools `
    OTHER=x
COPY a\b.txt `
     /dest/
