FROM scratch AS base
CMD ["inherited"]
FROM base
ENTRYPOINT exec /app "$@"
EXPOSE 8080/udp
USER 1000
