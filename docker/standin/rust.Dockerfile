# Stand-in for rust:1-bookworm, built by docker/standin/build.sh only where that image
# cannot be pulled. Like the official image: Debian bookworm with a C toolchain, git,
# curl, pkg-config and CA roots, the Rust toolchain in /usr/local/rustup with its
# commands on PATH through /usr/local/cargo/bin. The toolchain is the build machine's own
# (copied into the build context by build.sh), and so are the machine's extra CA roots
# (its egress proxy re-signs crates.io), which cargo needs to fetch crates.
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       ca-certificates curl git gcc g++ libc6-dev make pkg-config xz-utils \
    && rm -rf /var/lib/apt/lists/*

COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates

ARG TOOLCHAIN
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain/ /usr/local/rustup/toolchains/${TOOLCHAIN}/
RUN mkdir -p /usr/local/cargo/bin \
    && for b in /usr/local/rustup/toolchains/${TOOLCHAIN}/bin/*; do \
         ln -s "$b" /usr/local/cargo/bin/; \
       done \
    && chmod -R a+w /usr/local/cargo \
    && cargo --version && rustc --version
