# FrameDB's server image: the image /framedb-config/setup deploys as `framedb-config`
# (run as `framedb-server local`), and the global service's. Build and publish it to a
# registry the clusters pull from, and point setup at it (README, "Running on a real
# cluster"): docker build -t REGISTRY/framedb/framedb-server:0.1.0 . && docker push ...,
# then `framedb-server global --server-image REGISTRY/framedb/framedb-server:0.1.0`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin framedb-server

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 framedb
COPY --from=build /src/target/release/framedb-server /usr/local/bin/framedb-server
USER framedb
ENV FRAMEDB_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/framedb-server"]
