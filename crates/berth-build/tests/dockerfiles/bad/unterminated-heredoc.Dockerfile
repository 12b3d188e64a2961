# error: 3:1: unterminated heredoc "EOF"
FROM busybox:latest
RUN <<EOF
echo never ends
EOF-NOT
