#!/usr/bin/env bash
# Breaks each documented key-source guarantee in turn and checks that the test defending it
# fails (docs/testing.md lists the results).
#
#   scripts/mutants.sh            # every breakage
#   scripts/mutants.sh NAME...    # only these
#
# Each breakage is a perl substitution on one source file: the file is backed up, edited (the
# script stops if the substitution no longer applies, so a stale entry cannot pass silently),
# the whole test binary that holds the named test runs, and the file is restored, also on
# Ctrl-C. Each line says whether the named test failed ("caught"), and which other tests of
# that binary failed too (none, before these tests existed, for every breakage listed here).
# Exit status: 0 when every breakage was caught by its named test, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

SRC=crates/keyward/src/source/mod.rs
STATE=crates/keyward/src/source/state.rs
WARM=crates/keyward/src/source/warm.rs
HTTP=crates/keyward/src/source/http.rs
VERIFY=crates/keyward/src/verify/mod.rs
CLI_VERIFY=crates/keyward-cli/src/cmd/verify.rs
LIB_TEST=(cargo test -p keyward --test source)
CLI_TEST=(cargo test -p keyward-cli --test cli)
BIN_TEST=(cargo test -p keyward-cli --bin keyward)

# name ~ file ~ perl substitution ~ test runner (lib or cli) ~ test filter
MUTANTS=(
  "save_direct~$WARM~s/tokio::fs::write\(&tmp, contents\).await\?;\s*tokio::fs::rename\(&tmp, path\).await/let _ = &tmp; tokio::fs::write(path, contents).await/~lib~guarantees::warm_start_readers_never_see_a_partial_file"
  "tmp_create_new~$WARM~s/tokio::fs::write\(&tmp, contents\).await\?;/{ use tokio::io::AsyncWriteExt as _; let mut f = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).await?; f.write_all(contents.as_bytes()).await?; }/~lib~guarantees::a_leftover_temp_file"
  "token_in_debug_log~$VERIFY~s/\"token rejected: \{\}\",\s*e.detail\(\)/\"token rejected: {} ({token})\", e.detail()/~lib~guarantees::no_token_segment"
  "kidless_refetch~$SRC~s/\(Err\(e\), Some\(kid\)\) if e.reason\(\) == Reason::InvalidSignature => \{\s*\(e, Trigger::SignatureRetry, kid\)/(Err(e), k) if e.reason() == Reason::InvalidSignature => { (e, Trigger::SignatureRetry, k.unwrap_or(\"\"))/~lib~guarantees::a_kidless_token"
  "no_single_flight~$SRC~s/if control.inflight \|\| \*self.attempts.borrow\(\) != seen_attempt/if (control.inflight \&\& !limited) || *self.attempts.borrow() != seen_attempt/~lib~guarantees::concurrent_unknown_kid_lookups_share_one_fetch"
  "no_budget~$STATE~s/(\) -> Result<\(\), \(NoFetchReason, Duration\)> \{)/\$1 if true { return Ok(()); }/~lib~guarantees::sequential_unknown_kids"
  "budget_off_by_one~$STATE~s/if self.recent.len\(\) >= budget/if self.recent.len() > budget/~lib~guarantees::sequential_unknown_kids"
  "no_spacing~$STATE~s/if since < spacing \{/if since < spacing \&\& false {/~lib~flood::unknown_kid_flood_is_limited_per_window"
  "dns_not_retried~$HTTP~s/FetchStage::Connect \| FetchStage::Timeout \| FetchStage::Dns/FetchStage::Connect | FetchStage::Timeout/~lib~guarantees::dns_errors_are_retried"
  "budget_shared_by_sources~$STATE~s/(\) -> Result<\(\), \(NoFetchReason, Duration\)> \{)/\$1 static SHARED: std::sync::Mutex<VecDeque<Instant>> = std::sync::Mutex::new(VecDeque::new()); let mut shared = SHARED.lock().unwrap(); let _ = &self;/; s/self\.recent/shared/g~lib~guarantees::a_flood_on_one_issuer"
  "follow_up_off~$STATE~s/if now <= later\(miss.first, settings.follow_up_window \+ settings.fetch_spacing\(\)\) \{/if false {/~lib~rotation::late_published_kid_is_accepted_within_5s_of_publication"
  "removal_unconfirmed~$STATE~s/None => \(settings.removal_confirm_within, Some\(later\(now.at, settings.removal_confirm_after\)\)\),/None => (Duration::ZERO, None),/~lib~rotation::removed_key_stops_verifying_once_a_second_fetch_confirms"
  "removal_never_confirmed~$STATE~s/\} else if !r.active\(now.at\) \|\| r.confirm_from.is_some_and\(\|t\| now.at >= t\) \{/} else if !r.active(now.at) {/~lib~rotation::removed_key_stops_verifying_once_a_second_fetch_confirms"
  "cli_negative_cache_default~$CLI_VERIFY~s/settings.negative_cache_ttl = args.refresh_cooldown;//~bin~settings_tests::source_flags_become_settings"
)

restore() {
  if [[ -n "${BACKUP:-}" && -f "$BACKUP" ]]; then
    cp "$BACKUP" "$TARGET_FILE" && rm -f "$BACKUP"
  fi
}
trap restore EXIT INT TERM

wanted=("$@")
caught=0
missed=0
for entry in "${MUTANTS[@]}"; do
  IFS='~' read -r name TARGET_FILE expr runner filter <<<"$entry"
  if [[ ${#wanted[@]} -gt 0 && ! " ${wanted[*]} " =~ " $name " ]]; then
    continue
  fi
  BACKUP="$(mktemp)"
  cp "$TARGET_FILE" "$BACKUP"
  perl -0pi -e "$expr" "$TARGET_FILE"
  if cmp -s "$TARGET_FILE" "$BACKUP"; then
    echo "$name: the substitution no longer applies to $TARGET_FILE" >&2
    restore
    exit 2
  fi
  case $runner in
    cli) cmd=("${CLI_TEST[@]}") ;;
    bin) cmd=("${BIN_TEST[@]}") ;;
    *) cmd=("${LIB_TEST[@]}") ;;
  esac
  log="$(mktemp)"
  "${cmd[@]}" >"$log" 2>&1
  if ! grep -q "^test result:" "$log"; then
    echo "BUILD FAIL  $name: the mutated code did not compile; see $log" >&2
    missed=$((missed + 1))
    restore
    continue
  fi
  # The names listed under "failures:" at the end of libtest's output.
  failed="$(sed -n '/^failures:$/,/^test result:/p' "$log" | grep -E '^    [a-z0-9_:]+$' | sed 's/^ *//' | sort -u)"
  others="$(grep -v -- "$filter" <<<"$failed" | grep -v '^$' | tr '\n' ' ')"
  if grep -q -- "$filter" <<<"$failed"; then
    echo "caught      $name  by $filter; other tests failing: ${others:-none}"
    caught=$((caught + 1))
  else
    echo "NOT CAUGHT  $name  by $filter; other tests failing: ${others:-none}"
    missed=$((missed + 1))
  fi
  rm -f "$log"
  restore
done
echo "$caught caught, $missed not caught"
[[ $missed -eq 0 ]]
