# Stand-in for postgres:16, built by docker/standin/build.sh only where that image cannot
# be pulled. Debian bookworm packages PostgreSQL 15 (16 is not in its archive), so the
# server is 15; the contract compose.yaml relies on is the official image's: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB on first start, data in /var/lib/postgresql/data,
# pg_isready on PATH, port 5432, a clean shutdown on the stop signal.
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown postgres:postgres /var/run/postgresql \
    && chmod 2777 /var/run/postgresql

ENV PG_MAJOR=15 \
    PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data

COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
VOLUME /var/lib/postgresql/data

STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
