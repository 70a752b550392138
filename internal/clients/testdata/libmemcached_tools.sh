#!/usr/bin/env bash
# libmemcached-tools (Debian names: memccp, memccat, memcstat, ...), text
# and binary protocol.
#
# Usage: bash libmemcached_tools.sh HOST:PORT. An expiry of 4294967295 goes
# out as itself (text) or as 0xffffffff (binary): memcached's text protocol
# reads it back as -1 and the item is expired at once; its binary protocol
# takes it as an absolute time decades ahead and the item stays.
set -u
servers="--servers=$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1

# check NAME GOT WANT
check() {
	if [ "$2" = "$3" ]; then
		echo "ok $1"
	else
		echo "FAIL $1: got $(printf %q "$2" | head -c 300), want $(printf %q "$3" | head -c 300)"
	fi
}

# status runs a tool and prints its exit status (0 or "failed").
status() {
	if "$@" >/dev/null 2>&1; then echo 0; else echo failed; fi
}

for mode in text binary; do
	b=()
	[ "$mode" = binary ] && b=(--binary)
	t() { "$1" "${b[@]}" "$servers" "${@:2}"; }
	p="${mode}_"

	echo "hello $mode" >"${p}file"
	check "$mode/memccp" "$(status t memccp "${p}file")" 0
	check "$mode/memccat" "$(t memccat "${p}file")" "hello $mode"
	head -c 300000 /dev/urandom >"${p}big"
	t memccp "${p}big"
	# memccat ends the value with a newline of its own.
	check "$mode/memccat_large" "$(t memccat "${p}big" | head -c 300000 | cmp - "${p}big" && echo same)" same
	check "$mode/memccp_flags" "$(t memccp --flags=123 "${p}file"; t memccat --flags "${p}file" | head -1)" 123
	check "$mode/memccp_add_existing" "$(status t memccp --add "${p}file")" failed
	check "$mode/memccp_replace_missing" "$(echo x >"${p}none"; status t memccp --replace "${p}none")" failed
	check "$mode/memccat_missing" "$(status t memccat "${p}none")" failed
	check "$mode/memcexist" "$(status t memcexist "${p}file")" 0
	check "$mode/memcexist_missing" "$(status t memcexist "${p}none")" failed
	check "$mode/memctouch" "$(status t memctouch --expire=3600 "${p}file"; t memccat "${p}file")" "0
hello $mode"
	check "$mode/memctouch_missing" "$(status t memctouch --expire=3600 "${p}none")" failed
	check "$mode/memcrm" "$(status t memcrm "${p}file"; status t memcexist "${p}file")" "0
failed"

	if [ "$mode" = text ]; then want=failed; else want=0; fi
	echo "neg" >"${p}neg"
	check "$mode/memccp_expire_-1" "$(status t memccp --expire=-1 "${p}neg"; status t memcexist "${p}neg")" "0
$want"
	echo "big" >"${p}exp"
	check "$mode/memccp_expire_4294967295" "$(status t memccp --expire=4294967295 "${p}exp"; status t memcexist "${p}exp")" "0
$want"
	echo "touch" >"${p}touch"
	t memccp "${p}touch"
	check "$mode/memctouch_expire_4294967295" "$(status t memctouch --expire=4294967295 "${p}touch"; status t memcexist "${p}touch")" "0
$want"
	check "$mode/in_step_after_expiry" "$(t memccp "${p}big" && t memccat "${p}big" | head -c 300000 | cmp - "${p}big" && echo same)" same

	stats=$(t memcstat)
	check "$mode/memcstat" "$(grep -cE '^\s+(pid|curr_items|get_hits|limit_maxbytes):' <<<"$stats")" 4
done

s=("$servers")
echo dumped >dumped
memccp "${s[@]}" dumped
check memcping "$(status memcping "${s[@]}")" 0
# memcdump lists keys with "stats cachedump", which shows memcached's items
# only once they leave the hot LRU: just check it runs.
check memcdump "$(status memcdump "${s[@]}")" 0
check memcflush "$(status memcflush "${s[@]}"; status memcexist "${s[@]}" dumped)" "0
failed"
