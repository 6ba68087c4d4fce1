# logtrain container image.
#   docker build -t logtrain:0.1.0 .
# Build stage: the release binary from the locked dependency set.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# Runtime: glibc and CA certificates only, no shell, uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/logtrain /logtrain
USER 65532:65532
# HTTP (health, readiness, metrics, HTTP inputs), Envoy access-log gRPC, syslog TCP,
# syslog UDP, syslog TLS: the defaults of HTTP_PORT, ENVOY_PORT, SYSLOG_TCP_PORT,
# SYSLOG_UDP_PORT and SYSLOG_TLS_PORT.
EXPOSE 9000/tcp 9001/tcp 9002/tcp 9003/udp 9004/tcp
ENTRYPOINT ["/logtrain"]
