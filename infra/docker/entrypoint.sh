#!/bin/sh
# The project images' entrypoint. Beam runners start an SDK worker container with flags only
# (--id=... --provision_endpoint=...) or with nothing: those go to Beam's boot binary. Anything else is a
# command and runs as given (`docker run IMAGE python pipelines/run_local.py ...`). KFP tasks never get
# here: KFP replaces the entrypoint with the task's own command.
set -e
case "${1:-}" in
  "" | -*) exec "${BEAM_BOOT:-/opt/apache/beam/boot}" "$@" ;;
esac
exec "$@"
