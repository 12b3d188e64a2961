FROM busybox:latest
ARG GREETING=hello
RUN <<EOF
set -e
echo "$GREETING" > /greeting
EOF
RUN <<-'SCRIPT' sh
	echo 'tabs are stripped, $GREETING stays'
	SCRIPT
RUN cat <<A > /a.txt && cat 3<<"B" > /b.txt
first file
A
second $file
B
COPY <<CONF /etc/app.conf
greeting=${GREETING}
CONF
COPY --chmod=0755 <<'SH' /usr/local/bin/hi
#!/bin/sh
echo "hi $1"
SH
ADD <<LIST /list.txt
one
LIST
