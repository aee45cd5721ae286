# The cashflow server and page, for docker-compose.yml. No Java in this image: it always runs
# with --brokers (CASHFLOW_BROKERS), never its own managed broker.
FROM rust:1.99-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN CASHFLOW_TOOLS=/tools scripts/setup.sh rust && CASHFLOW_TOOLS=/tools scripts/setup.sh page \
 && PATH=/tools/bin:/tools/npm/node_modules/.bin:$PATH scripts/page.sh dist \
 && cargo build --release -p cashflow --no-default-features

FROM debian:bookworm-slim
# librdkafka's TLS links OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cashflow /usr/local/bin/cashflow
COPY --from=build /src/dist /srv/cashflow
ENV CASHFLOW_WEB_DIR=/srv/cashflow
EXPOSE 8080
ENTRYPOINT ["cashflow"]
