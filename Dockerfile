# FrameDB's server image: the image /framedb-config/setup deploys as `framedb-config`
# (run as `framedb-server local`), and the global service's. Build and publish it to a
# registry the clusters pull from, and point setup at it (README, "Running on a real
# cluster"): docker build -t REGISTRY/framedb/framedb-server:0.1.0 . && docker push ...,
# then `framedb-server global --server-image REGISTRY/framedb/framedb-server:0.1.0`;
# deploy/ runs the global service from it on a cluster (deploy/README.md).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin framedb-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 framedb && useradd --system --uid 10001 --gid 10001 framedb
COPY --from=build /src/target/release/framedb-server /usr/local/bin/framedb-server
# Numeric, so that the kubelet can check `runAsNonRoot` against the image (deploy/).
USER 10001:10001
ENV FRAMEDB_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/framedb-server"]
