# escape=!
FROM busybox:latest
