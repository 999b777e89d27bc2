#!/usr/bin/env bash
# Dependency checks (`make test` runs them as the "dependencies" suite; seconds once cargo-deny
# is built). Every check runs; the summary lists the failures and the exit status is 1 if any.
#   1. cargo deny check advisories bans licenses sources on the workspace, with deny.toml:
#      the RustSec advisories of the snapshot in ../shared/advisory-db (ARCA_ADVISORY_DB to
#      use another copy), offline; every advisory found is an error unless deny.toml's ignore
#      list names it with its reason
#   2. the same command and deny.toml refuse tests/fixtures/deny/vulnerable (tar 0.4.44) and
#      name its two advisories: the database is read, and an advisory is not let through
# cargo-deny never fetches the database (--offline) and runs without a network at all where
# the machine allows it (unshare --net), so a run that tried to fetch would fail here. The
# crates it reads the graph of are a build's: `cargo fetch` gets any that is missing first.
# The web app's `npm audit` is not run: the npm registry reached from here refuses its bulk
# advisory request (405 Method Not Allowed, only GET and HEAD allowed).
# cargo-deny is built once per version (scripts/tools.sh, ~/.cache/arca/tools); the snapshot
# is copied once per content into ~/.cache/arca/advisory-dbs as a git repository committed
# with the snapshot's date, which is what cargo-deny's staleness limit reads.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=${ARCA_ADVISORY_DB:-../shared/advisory-db}
# deny.toml's db-path, and the directory cargo-deny 0.20 reads the default database from in it
# (named after the database's URL). A cargo-deny that names it otherwise fails the check with
# "failed to get HEAD timestamp"; `cargo-deny -L debug check advisories` shows the new name.
DBS=$HOME/.cache/arca/advisory-dbs
DB=$DBS/advisory-db-3157b0e258782691
# deny.toml's [graph] targets: the platform whose crates cargo metadata reads.
TARGET=x86_64-unknown-linux-gnu
FIXTURE=$PWD/tests/fixtures/deny/vulnerable
FIXTURE_ADVISORIES=(RUSTSEC-2026-0067 RUSTSEC-2026-0068)

WORK=$(mktemp -d /tmp/arca-deps-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failures=()
fail() { failures+=("$1"); echo "FAIL: $1" >&2; }
step() { echo "== deps-check: $* ($(date +%T))"; }

step "tools"
DENY=$(scripts/tools.sh cargo-deny)
"$DENY" --version
NONET=()
if unshare --net true 2>/dev/null; then
  NONET=(unshare --net)
else
  echo "deps-check: unshare --net is not permitted here; offline by --offline alone" >&2
fi

# Copies the snapshot to $DB, a git repository whose commit carries the snapshot's date,
# unless the copy there has the same content already. (Called in a condition, where set -e
# does not apply: each step says `|| return 1`.)
stage_db() {
  local stamp date new
  if [ ! -f "$SRC/SNAPSHOT" ]; then
    # A checkout that is not beside ../shared (a CI clone elsewhere): the copy staged from
    # the snapshot before, if any; its date still bounds it (deny.toml's staleness limit).
    [ -f "$DB/.git/arca-stamp" ] || {
      echo "deps-check: no advisory snapshot in $SRC (ARCA_ADVISORY_DB), and none staged in $DB" >&2
      return 1
    }
    echo "deps-check: no snapshot in $SRC; using the copy staged in $DB ($(git -C "$DB" log -1 --format=%s))"
    return 0
  fi
  stamp=$(cd "$SRC" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16) || return 1
  [ "$(cat "$DB/.git/arca-stamp" 2>/dev/null)" = "$stamp" ] && return 0
  # The date SNAPSHOT gives ("... (2026-08-21)"), else the newest advisory's.
  date=$(grep -oE '\([0-9]{4}-[0-9]{2}-[0-9]{2}\)' "$SRC/SNAPSHOT" | head -n1 | tr -d '()')
  if [ -z "$date" ]; then
    date=$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$SRC/crates" | cut -d'"' -f2 | sort | tail -n1)
  fi
  [ -n "$date" ] || { echo "deps-check: no date in $SRC/SNAPSHOT nor in its advisories" >&2; return 1; }
  echo "staging the advisory snapshot of $date into $DB"
  mkdir -p "$DBS" || return 1
  new=$(mktemp -d "$DBS/staging.XXXXXX") || return 1
  cp -R "$SRC/." "$new/" || return 1
  chmod -R u+w "$new" || return 1 # the shared copy may have no write bits
  git -C "$new" init -q || return 1
  git -C "$new" add -A || return 1
  GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" \
    git -C "$new" -c user.name=arca -c user.email=arca@localhost -c commit.gpgsign=false \
    commit -qm "snapshot of $date" || return 1
  # cargo-deny takes the newer of the commit's date and .git/HEAD's modification time.
  touch -d "${date}T00:00:00Z" "$new/.git/HEAD" || return 1
  echo "$stamp" >"$new/.git/arca-stamp" || return 1
  # Replaced whole, under a lock: two runs staging at once do not mix their copies.
  (
    flock 9 || exit 1
    rm -rf "$DB" && mv -T "$new" "$DB"
  ) 9>"$DBS/stage.lock" || { rm -rf "$new"; return 1; }
}

step "advisory database: $SRC"
if stage_db; then
  sed -n '1,2p' "$DB/SNAPSHOT"
  echo "staged as $DB"
else
  fail "advisory snapshot could not be staged"
fi

step "crates of the graph"
# Already there after a build (make test builds and tests first); fetched from the crate
# registry otherwise, as a build would. Nothing is fetched when they are all there.
cargo fetch --locked --target "$TARGET" || fail "cargo fetch (the crates cargo deny reads the graph of)"

step "cargo deny check advisories bans licenses sources (the workspace, offline)"
if ! "${NONET[@]}" "$DENY" --offline --locked --color never \
  check --hide-inclusion-graph --show-stats advisories bans licenses sources; then
  fail "cargo deny on the workspace (see above: an advisory to fix or to explain in deny.toml, a license, a source, a ban)"
fi

step "cargo deny refuses tests/fixtures/deny/vulnerable (tar 0.4.44)"
# metadata.json is that crate's `cargo metadata` with its paths as placeholders: cargo deny
# reads the graph from it, so tar 0.4.44 need not be downloaded. deny.toml's ignore list names
# advisories this graph does not have: that lint is allowed here.
sed -e "s|@FIXTURE@|$FIXTURE|g" -e "s|@REGISTRY@|$WORK/registry|g" "$FIXTURE/metadata.json" >"$WORK/metadata.json"
status=0
"${NONET[@]}" "$DENY" --offline --color never --format json --manifest-path "$FIXTURE/Cargo.toml" \
  --metadata-path "$WORK/metadata.json" --config deny.toml \
  check -A advisory-not-detected advisories >"$WORK/fixture.out" 2>"$WORK/fixture.json" || status=$?
python3 - "$WORK/fixture.json" >"$WORK/fixture.ids" <<'EOF' || true
import json, sys
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    f = d.get("fields", {})
    if d.get("type") == "diagnostic" and f.get("severity") == "error" and f.get("code") == "vulnerability":
        print(f["advisory"]["id"])
EOF
# cargo-deny's exit status is a bit set of the failed checks; 1 is advisories alone.
if [ "$status" -ne 1 ]; then
  cat "$WORK/fixture.json" >&2
  fail "cargo deny on the fixture exited $status, not 1 (advisories failed)"
fi
for id in "${FIXTURE_ADVISORIES[@]}"; do
  if grep -qx "$id" "$WORK/fixture.ids"; then
    echo "refused: $id"
  else
    fail "cargo deny on the fixture did not name $id as an error (named: $(tr '\n' ' ' <"$WORK/fixture.ids"))"
  fi
done

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "deps-check: ${#failures[@]} failure(s):"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "deps-check: all dependency checks passed"
