# error: 3:1: expanding WORKDIR
FROM busybox:latest
WORKDIR ${APP_DIR:?set APP_DIR}
