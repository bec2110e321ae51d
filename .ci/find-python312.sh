#!/usr/bin/env bash
# Prints the path of a Python 3.12 interpreter that actually runs (and can make a venv), for the Isaac Lab venv.
# A path is not enough: pyenv's `python3.12` shim is on PATH on many machines but only runs when pyenv's selected
# version is 3.12, so every candidate is run (`--version`) and must report 3.12. Candidates, in order:
#   $PY312; python3.12 on PATH; $(pyenv root)/versions/3.12*/bin/python3.12 and /root/.pyenv/versions/3.12*/...;
#   `pyenv which python3.12` with PYENV_VERSION set to an installed 3.12; /usr/bin/python3.12; `uv python find 3.12`.
# Exit 0 with the path on stdout; exit 1 with what was tried and what to install on stderr if none runs.
set -uo pipefail

tried=()
seen=" "

try() {  # try CANDIDATE: print it and exit 0 if it runs Python 3.12 with venv/ensurepip
  local cand=$1 out
  [ -n "$cand" ] || return 0
  case "$seen" in *" $cand "*) return 0 ;; esac
  seen+="$cand "
  if [ ! -x "$cand" ] && ! command -v "$cand" >/dev/null 2>&1; then
    tried+=("$cand: not found"); return 0
  fi
  out=$(timeout 30 "$cand" --version 2>&1 </dev/null)
  local rc=$?
  if [ $rc -ne 0 ] || [[ "$out" != "Python 3.12"* ]]; then
    tried+=("$cand: \`--version\` gave exit $rc: $(printf '%s' "$out" | head -1)"); return 0
  fi
  if ! timeout 30 "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1 </dev/null; then
    tried+=("$cand: $out, but without the venv/ensurepip modules (Debian/Ubuntu: apt install python3.12-venv)")
    return 0
  fi
  # An absolute path, so the caller can use it with any PATH or pyenv state.
  case "$cand" in /*) ;; *) cand=$(command -v "$cand") ;; esac
  echo "$cand"
  exit 0
}

if [ -n "${PY312:-}" ]; then
  try "$PY312"
  echo "warning: PY312=$PY312 does not run Python 3.12 (${tried[-1]#*: }); looking for another" >&2
fi

try "$(command -v python3.12 2>/dev/null)"

roots=()
if command -v pyenv >/dev/null 2>&1; then
  r=$(pyenv root 2>/dev/null) && [ -n "$r" ] && roots+=("$r")
fi
roots+=(/root/.pyenv)
for r in "${roots[@]}"; do
  # newest 3.12.x first
  while IFS= read -r cand; do try "$cand"; done < <(
    ls -d "$r"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV)
done

if command -v pyenv >/dev/null 2>&1; then
  v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -V | tail -1)
  if [ -n "$v" ]; then
    try "$(PYENV_VERSION=$v pyenv which python3.12 2>/dev/null)"
  fi
fi

try /usr/bin/python3.12

if command -v uv >/dev/null 2>&1; then
  try "$(uv python find 3.12 2>/dev/null)"
fi

{
  echo "error: no working Python 3.12 interpreter found (the Isaac Lab backend needs one). Tried:"
  if [ ${#tried[@]} -eq 0 ]; then echo "  (no candidate exists)"; else printf '  %s\n' "${tried[@]}"; fi
  echo "Install Python 3.12 with its venv module — e.g. \`pyenv install 3.12\`, \`uv python install 3.12\`, or your"
  echo "OS's python3.12 + python3.12-venv packages — or set PY312=/path/to/python3.12."
} >&2
exit 1
