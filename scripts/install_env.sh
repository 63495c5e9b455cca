#!/usr/bin/env bash
# Install the pinned packages into a virtual environment: scripts/install_env.sh VENV_PYTHON
#
# The installer is uv (a pinned wheel from PyPI, installed into the venv first), which resolves and
# unpacks the ~160 pinned wheels in parallel: about 15 s on the 2-core CI machine against 3.5 min for
# pip. uv does not read pip's configuration, so the pip settings that choose where packages come from
# (index, extra indexes, find-links, constraints, certificate) are handed to it as UV_* variables;
# like pip, every configured index is trusted equally. If uv cannot be installed or fails, pip does
# the same job (torch first, so that no other torch build is ever fetched). The result is the same
# set of pinned versions either way.
set -euo pipefail
PYTHON="$1"
UV_VERSION="0.13.9"
VENV_BIN="$(dirname "$PYTHON")"

pip_config() {  # the value of one pip setting (environment first, then pip's config files), or empty
  "$PYTHON" -m pip config get "$1" 2>/dev/null || true
}

with_pip() {
  echo "[install_env] installing with pip"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check torch==2.13.0
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements.txt
}

with_uv() {
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" || return 1
  local value
  value="${PIP_INDEX_URL:-$(pip_config global.index-url)}"; [ -n "$value" ] && export UV_DEFAULT_INDEX="$value"
  value="${PIP_EXTRA_INDEX_URL:-$(pip_config global.extra-index-url)}"; [ -n "$value" ] && export UV_INDEX="$(echo $value)"
  value="${PIP_FIND_LINKS:-$(pip_config global.find-links)}"; [ -n "$value" ] && export UV_FIND_LINKS="$(echo $value | tr ' ' ',')"
  value="${PIP_CONSTRAINT:-$(pip_config global.constraint)}"; [ -n "$value" ] && export UV_CONSTRAINT="$value"
  value="${PIP_CERT:-$(pip_config global.cert)}"; [ -n "$value" ] && export SSL_CERT_FILE="$value"
  export UV_INDEX_STRATEGY=unsafe-best-match  # pip's rule: the best version from any configured index
  "$VENV_BIN/uv" pip install --quiet --python "$PYTHON" -r requirements.txt
}

if [ "${XMLIB_INSTALLER:-uv}" = "pip" ] || ! with_uv; then
  [ "${XMLIB_INSTALLER:-uv}" = "pip" ] || echo "[install_env] uv did not install the environment; falling back to pip" >&2
  with_pip
fi
