ARG TAG=unused
FROM scratch
ARG A=from-default
ARG B
ENV A=env-wins
ARG A=ignored
ENV COMBINED="$A/${B:-no-b}/${TAG:-no-tag}" Q='$A' D="\$A"
LABEL a=$A b=${B}
WORKDIR /w/$B
