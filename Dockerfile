# gocached as a drop-in for the official memcached image.
#
# Nothing can be pulled where this is built, so there is no build stage:
# build the static binary on the host first, then the image (make image):
#
#   CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o bin/gocached ./cmd/gocached
#   docker build -t gocached:latest .
#
# Usage is the official image's: "docker run gocached -m 64", or in compose
# "command: memcached -m 64 -c 1024" (a leading "memcached" is ignored) or
# "command: [\"-m\", \"64\"]". It runs as uid 11211, the official image's
# memcache user, so no -u is needed.
FROM scratch
COPY bin/gocached /gocached
USER 11211:11211
EXPOSE 11211
# A container stop is memcached's graceful stop, SIGUSR1: with -e it saves
# the cache for the next container on the same memory file (a warm
# rollout), without -e it stops as SIGTERM would. docker stop, compose,
# swarm and Kubernetes (containerd and CRI-O) send the image's stop signal.
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/gocached"]
CMD ["memcached"]
# No shell in the image: the binary checks itself ("version" -> "VERSION ...")
# on 127.0.0.1:11211; a service started with another -p or -l overrides it,
# e.g. in compose: healthcheck: {test: ["CMD", "/gocached", "healthcheck", "--addr", "127.0.0.1:12345"]}.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/gocached", "healthcheck"]
