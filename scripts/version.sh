#!/usr/bin/env bash
# Prints the version being developed (Cargo.toml's package version, which cargo pgrx writes into
# the control file as default_version).
sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n1
