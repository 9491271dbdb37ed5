#!/usr/bin/env bash
# Installs, once, the tools the Kafka tests need, pinned, into a cache outside
# the clone (KAPPA_TOOLS_DIR, default ~/.cache/kappa-tools), and prints the
# environment the tests read:
#
#   eval "$(scripts/kafka-tools.sh)"   # sets KAPPA_TANSU and KAPPA_KAFKA_PYTHON
#
# - tansu: an Apache Kafka compatible broker, built from crates.io with
#   `cargo install` (about 10 minutes on 2 cores, the first time only). The
#   tests start it on loopback; it is never a mock.
# - kafka-python: a pure-Python Kafka client, independent of librdkafka, in a
#   venv: the tests use it as an outside producer.
# Progress goes to stderr, the exports to stdout.
set -euo pipefail

TANSU_VERSION=0.6.0
KAFKA_PYTHON_VERSION=2.3.3

tools="${KAPPA_TOOLS_DIR:-$HOME/.cache/kappa-tools}"
tansu_root="$tools/tansu-$TANSU_VERSION"
tansu="$tansu_root/bin/tansu"
venv="$tools/kafka-python-$KAFKA_PYTHON_VERSION"

say() { echo "kafka-tools: $*" >&2; }

if [ ! -x "$tansu" ]; then
    say "building tansu $TANSU_VERSION into $tansu_root (first time only; about 10 minutes)"
    # Its own target dir, so that the build never touches the project's.
    CARGO_TARGET_DIR="$tools/tansu-build" cargo install tansu --version "$TANSU_VERSION" \
        --features dynostore,libsql --root "$tansu_root" --locked >&2
    rm -rf "$tools/tansu-build"
fi

if ! "$venv/bin/python" -c 'import kafka' 2>/dev/null; then
    say "installing kafka-python==$KAFKA_PYTHON_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kafka-python==$KAFKA_PYTHON_VERSION" >&2
fi

printf 'export KAPPA_TANSU=%q\n' "$tansu"
printf 'export KAPPA_KAFKA_PYTHON=%q\n' "$venv/bin/python"
