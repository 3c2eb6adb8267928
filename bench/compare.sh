#!/usr/bin/env bash
# bench/compare.sh: how fast udpd answers, next to its speed references.
#
#   bash bench/compare.sh            (make bench runs it after the Go micro-benchmarks)
#
# It builds, into a temporary directory, udpd and udpctl, the naive Go loop
# (bench/naive) and the C reference (bench/cref), and starts the three servers
# on 127.0.0.1, each on one socket pinned to core 0. The load is
# `udpctl bench -o json` (closed loop: 64-byte datagrams, 8 flows x 16 in
# flight) pinned to core 1. udpd runs with one worker, like the C reference.
#
# Each of PAIRS rounds measures four pairs, each udpd (ASCII) back to back
# with one of: the C reference (ASCII), the naive Go loop (ASCII), udpd with
# mixed UTF-8, and udpd (ASCII) while a client watches its counters at 10 Hz.
# Every other round runs each pair in the reverse order, so drift does not
# favour one side; every ratio is taken within its pair, then summarised as
# median (min-max) over the rounds.
# The references are only ever sent ASCII: they do not implement Unicode.
#
# Environment:
#   PAIRS=3        rounds (each has one udpd/C pair)
#   DURATION=5s    length of each measurement (udpctl bench --duration)
#   WARMUP=1s      unmeasured load on each server before the first round
#   GO=go CC=gcc   the toolchains
#   ONLY=          the pairs to run, of: c naive utf8 watched base (default: all
#                  but base, plus base when UDPD_BASE is set)
#   UDPD_BASE=     another udpd binary (an older build) to pair with this one:
#                  the "udpd/base" ratio compares two versions on the same load
#   BENCH_ARGS=    more flags for every `udpctl bench` run, e.g.
#                  "--segment=false" for a sender that does not use UDP_SEGMENT
#   BENCH_CLIENT=  run this program instead of udpctl for `bench` (it must take
#                  the same flags and print the same JSON); for testing this
#                  script or comparing load generators
#
# The defaults take about 130 s plus the build. The script exits non-zero when a
# build, a server or the load generator fails, or when any run reports a
# mismatched reply. The bars of issue 4 (udpd/C >= 0.9, utf8/ascii >= 0.7,
# watched/ascii >= 0.97) are
# reported as PASS or FAIL; a missed bar does not fail the script, since this is
# a measurement and depends on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
GO=${GO:-go}
CC=${CC:-gcc}
FLOWS=8
WINDOW=16
SIZE=64
BAR_C=0.9    # udpd/C, ASCII
BAR_UTF8=0.7 # udpd utf8/ascii
BAR_WATCH=0.97 # udpd with a 10 Hz WatchStats client / without: under 3% cost

die() {
	echo "compare.sh: $*" >&2
	exit 1
}

[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "PAIRS=$PAIRS: want a whole number of 1 or more"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/udpd-bench.XXXXXX")
declare -A pid_of=() addr_of=()

# alive PID: PID is running (a zombie, exited but not yet waited for, is not).
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != Z ]]
}

# cleanup stops every server this script started: SIGTERM, then SIGKILL after
# 5 s, and waits for each, so that no process outlives the script.
cleanup() {
	local name pid
	for pid in "${pid_of[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for name in "${!pid_of[@]}"; do
		pid=${pid_of[$name]}
		for _ in {1..50}; do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			echo "compare.sh: $name (pid $pid) ignored SIGTERM for 5s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- where to run: servers on core 0, load on core 1 -------------------------
pin_server=()
pin_load=()
if ! command -v taskset >/dev/null 2>&1; then
	pinning="NOT PINNED: taskset is not installed; servers and load share the CPUs"
elif ! taskset -c 0 true 2>/dev/null || ! taskset -c 1 true 2>/dev/null; then
	pinning="NOT PINNED: cores 0 and 1 are not both available; servers and load share the CPUs"
else
	pin_server=(taskset -c 0)
	pin_load=(taskset -c 1)
	pinning="servers on core 0, load generator on core 1 (taskset)"
fi

# --- build --------------------------------------------------------------------
echo "== building udpd, udpctl, the naive Go loop and the C reference into $tmp"
"$GO" build -o "$tmp/" ./cmd/...
"$GO" build -o "$tmp/naive" ./bench/naive
"$CC" -O2 -Wall -Wextra -o "$tmp/uppercase_server" bench/cref/uppercase_server.c

if [[ -n ${BENCH_CLIENT:-} ]]; then
	bench=("$BENCH_CLIENT" bench)
	generator="$BENCH_CLIENT bench (BENCH_CLIENT, not udpctl)"
else
	bench=("$tmp/udpctl" bench)
	generator="udpctl bench"
fi
"${bench[@]}" --help >/dev/null 2>&1 ||
	die "'${bench[*]} --help' failed: no bench command in this load generator (udpctl bench is new in issue 4)"

# --- servers ------------------------------------------------------------------
# start NAME CMD...: runs CMD on the server core, its output in $tmp/NAME.log.
start() {
	local name=$1
	shift
	"${pin_server[@]}" "$@" >"$tmp/$name.log" 2>&1 &
	pid_of[$name]=$!
}

# await NAME: waits (bounded) until NAME reports the address it listens on and
# answers a datagram there with its uppercase; sets addr_of[NAME].
await() {
	local name=$1 pid=${pid_of[$1]} addr="" reply
	for _ in {1..100}; do
		alive "$pid" || { cat "$tmp/$name.log" >&2; die "$name exited while starting"; }
		if [[ $name == udpd || $name == base ]]; then
			[[ -f $tmp/$name.ready ]] && addr=$(awk '$1 == "listener" { print $3; exit }' "$tmp/$name.ready")
		else
			addr=$(awk '$1 == "listening" && $2 == "on" { print $3; exit }' "$tmp/$name.log")
		fi
		[[ -n $addr ]] && break
		sleep 0.1
	done
	[[ -n $addr ]] || { cat "$tmp/$name.log" >&2; die "$name did not report its address within 10s"; }
	for _ in {1..50}; do
		if reply=$("$tmp/udpctl" send --server "$addr" --timeout 200ms --retries 0 "ready?" 2>/dev/null) &&
			[[ $reply == "READY?" ]]; then
			addr_of[$name]=$addr
			return
		fi
		alive "$pid" || { cat "$tmp/$name.log" >&2; die "$name exited while starting"; }
		sleep 0.1
	done
	die "$name at $addr did not answer 'ready?' with 'READY?' within 10s (last reply: '${reply:-none}')"
}

start udpd "$tmp/udpd" --workers 1 --state "" --admin 127.0.0.1:0 --log-level warn \
	--listen 127.0.0.1:0 --ready-file "$tmp/udpd.ready"
start cref "$tmp/uppercase_server" 127.0.0.1 0
start naive "$tmp/naive" --listen 127.0.0.1:0
servers=(udpd cref naive)
if [[ -n ${UDPD_BASE:-} ]]; then
	start base "$UDPD_BASE" --workers 1 --state "" --admin 127.0.0.1:0 --log-level warn \
		--listen 127.0.0.1:0 --ready-file "$tmp/base.ready"
	servers+=(base)
fi
for name in "${servers[@]}"; do
	await "$name"
done

declare -A label=([udpd]="udpd" [cref]="C reference" [naive]="naive Go loop" [base]="udpd (UDPD_BASE)")

# --- measuring ----------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)

# cpu_ticks PID: user+system CPU time of the process (all threads), in ticks.
cpu_ticks() {
	local s f
	s=$(<"/proc/$1/stat")
	s=${s##*) }
	read -r -a f <<<"$s"
	echo $((f[11] + f[12])) # utime and stime, fields 14 and 15 of stat
}

# field FILE KEY: the number KEY holds in the flat JSON document in FILE
# (quoted numbers, as protojson writes 64-bit integers, are accepted).
field() {
	local v
	v=$(awk -v key="\"$2\"" 'BEGIN { RS = "[{},]" }
		(i = index($0, key)) {
			v = substr($0, i + length(key))
			sub(/^[ \t\r\n]*:[ \t\r\n]*"?/, "", v)
			sub(/"?[ \t\r\n]*$/, "", v)
			print v
			exit
		}' "$1")
	[[ $v =~ ^-?[0-9.]+([eE][-+]?[0-9]+)?$ ]] || die "no number \"$2\" in the load generator's output:
$(cat "$1")"
	echo "$v"
}

# div A B: A/B with 3 decimals.
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# summary VALUES...: "median min max".
summary() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}

mismatched_runs=()
declare -A dps=() eff=() p50=() p99=() cpu=() # "NAME PAYLOAD" -> space-separated values, one per round

# measure NAME PAYLOAD DURATION [ROUND [KEY]]: loads NAME's address for
# DURATION. With ROUND it records the result under KEY (default "NAME
# PAYLOAD"), which $last_dps also holds.
measure() {
	local name=$1 payload=$2 dur=$3 round=${4:-warm-up} pid=${pid_of[$1]} key=${5:-"$1 $2"}
	local out="$tmp/run-${key// /-}-$round.json" t0 t1 w0 w1 m lost rc when="round $round"
	[[ $round == warm-up ]] && when=warm-up
	t0=$(cpu_ticks "$pid")
	w0=$(date +%s%N)
	rc=0
	"${pin_load[@]}" "${bench[@]}" --server "${addr_of[$name]}" --duration "$dur" \
		--flows "$FLOWS" --window "$WINDOW" --size "$SIZE" --payload "$payload" ${BENCH_ARGS:-} -o json \
		>"$out" 2>"$out.err" || rc=$?
	if ((rc != 0)); then
		# A generator may exit non-zero on lost or mismatched replies; its
		# document still counts. Without one, the run failed.
		grep -q '"datagramsPerSecond"' "$out" || {
			cat "$out.err" "$out" >&2
			die "the load generator failed (exit $rc) against ${label[$name]} ($payload, $when)"
		}
		echo "   (${label[$name]} $payload $when: the load generator exited $rc: $(head -c 300 "$out.err" | tr '\n' ' '))"
	fi
	w1=$(date +%s%N)
	t1=$(cpu_ticks "$pid")
	alive "$pid" || { cat "$tmp/$name.log" >&2; die "${label[$name]} died during the $payload $when"; }

	last_dps=$(field "$out" datagramsPerSecond)
	m=$(field "$out" mismatched)
	lost=$(field "$out" lost)
	if awk -v m="$m" 'BEGIN { exit !(m > 0) }'; then
		echo "   !! ${label[$name]} ($payload, $when): $m mismatched replies" >&2
		mismatched_runs+=("${label[$name]} $payload $when: $m mismatched")
	fi
	awk -v d="$last_dps" 'BEGIN { exit !(d > 0) }' ||
		die "${label[$name]} ($payload, $when) answered nothing: $(tr -d '\n' <"$out")"
	# Datagrams per second of the server's CPU time: what a datagram costs
	# the server, which the machine's other load changes less than the rate.
	last_eff=$(awk -v d="$last_dps" -v t=$((t1 - t0)) -v hz="$clk_tck" -v ns=$((w1 - w0)) \
		'BEGIN { printf "%.0f", (t > 0 ? d * (ns / 1e9) / (t / hz) : 0) }')
	[[ $round == warm-up ]] && return
	dps[$key]+="$last_dps "
	eff[$key]+="$last_eff "
	p50[$key]+="$(field "$out" rttP50Us) "
	p99[$key]+="$(field "$out" rttP99Us) "
	cpu[$key]+="$(awk -v t=$((t1 - t0)) -v hz="$clk_tck" -v ns=$((w1 - w0)) \
		'BEGIN { printf "%.0f", 100 * t / hz / (ns / 1e9) }') "
	if awk -v l="$lost" 'BEGIN { exit !(l > 0) }'; then
		echo "   (${label[$name]} $payload $when: $lost lost)"
	fi
}

declare -A pair_of=([c]="cref ascii" [naive]="naive ascii" [utf8]="udpd utf8" [watched]="udpd watched" [base]="base ascii")
only=${ONLY:-c naive utf8 watched${UDPD_BASE:+ base}}
compared=()
for p in $only; do
	[[ -n ${pair_of[$p]:-} ]] || die "ONLY=$only: no pair '$p' (c naive utf8 watched base)"
	[[ $p != base || -n ${UDPD_BASE:-} ]] || die "ONLY=$only: base needs UDPD_BASE"
	compared+=("${pair_of[$p]}")
done
echo
echo "udpd speed comparison: $SIZE-byte datagrams, $FLOWS flows x $WINDOW in flight, closed loop"
echo "  rounds      PAIRS=$PAIRS x ${#compared[@]} pairs ($only) of runs of DURATION=$DURATION (after WARMUP=$WARMUP per server)"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "  machine     ${cpu_model:-$(uname -m)}, $(nproc) CPUs, Linux $(uname -r)"
echo "  toolchains  $("$GO" env GOVERSION), $("$CC" --version | head -n1)"
echo "  pinning     $pinning"
echo "  load        $generator${BENCH_ARGS:+ $BENCH_ARGS}"
echo "  udpd        --workers 1 --state \"\" --admin 127.0.0.1:0 --log-level warn --listen ${addr_of[udpd]}"
echo "  C reference ${addr_of[cref]} (recvmmsg/sendmmsg, batches of 32, ASCII only)"
echo "  naive loop  ${addr_of[naive]} (ReadFromUDP, bytes.ToUpper, WriteToUDP)"
[[ -z ${UDPD_BASE:-} ]] || echo "  base        $UDPD_BASE, same flags, ${addr_of[base]}"
echo

for name in "${servers[@]}"; do
	measure "$name" ascii "$WARMUP"
done

# measure_watched ROUND: udpd (ASCII) while a client follows its counters
# with WatchStats at 10 Hz (udpctl stats --watch --interval 100ms), the cost
# of watching a busy daemon.
measure_watched() {
	local admin watcher
	admin=$(awk '$1 == "admin" { print $2; exit }' "$tmp/udpd.ready")
	"${pin_load[@]}" "$tmp/udpctl" --admin "$admin" stats --watch --interval 100ms -o json >"$tmp/watch.jsonl" 2>&1 &
	watcher=$!
	measure udpd ascii "$DURATION" "$1" "udpd watched"
	kill -INT "$watcher" 2>/dev/null || true
	wait "$watcher" 2>/dev/null || true
	local updates
	updates=$(grep -c '"time"' "$tmp/watch.jsonl" || true)
	((updates >= 5)) || die "the 10 Hz watcher got only $updates updates: $(head -c 300 "$tmp/watch.jsonl")"
}

# Every comparison is a pair of runs back to back: udpd (ASCII) and the
# other run, in alternating order, so that the machine's drift (seen here:
# whole minutes 20% slower) lands on both sides of each ratio.
r_c=() r_naive=() r_utf8=() r_watch=() r_base=() e_c=() e_base=()
run_one() {
	if [[ $1 == "udpd watched" ]]; then
		measure_watched "$2"
	else
		measure "${1% *}" "${1#* }" "$DURATION" "$2"
	fi
}
for ((round = 1; round <= PAIRS; round++)); do
	declare -A got=()
	line=""
	for other in "${compared[@]}"; do
		if ((round % 2)); then
			run_one "udpd ascii" "$round"
			base=$last_dps base_eff=$last_eff
			run_one "$other" "$round"
		else
			run_one "$other" "$round"
			other_dps=$last_dps other_eff=$last_eff
			run_one "udpd ascii" "$round"
			base=$last_dps base_eff=$last_eff
			last_dps=$other_dps last_eff=$other_eff
		fi
		got[$other]=$last_dps
		line+="  ${label[${other% *}]} ${other#* } $last_dps/s"
		case $other in
		"cref ascii")
			r_c+=("$(div "$base" "$last_dps")") e_c+=("$(div "$base_eff" "$last_eff")")
			line+=" udpd/C ${r_c[-1]} (per CPU ${e_c[-1]})" ;;
		"naive ascii") r_naive+=("$(div "$base" "$last_dps")") line+=" udpd/naive ${r_naive[-1]}" ;;
		"udpd utf8") r_utf8+=("$(div "$last_dps" "$base")") line+=" utf8/ascii ${r_utf8[-1]}" ;;
		"udpd watched") r_watch+=("$(div "$last_dps" "$base")") line+=" watched/ascii ${r_watch[-1]}" ;;
		"base ascii")
			r_base+=("$(div "$base" "$last_dps")") e_base+=("$(div "$base_eff" "$last_eff")")
			line+=" udpd/base ${r_base[-1]} (per CPU ${e_base[-1]})" ;;
		esac
	done
	printf 'round %d/%d  load %s %s\n' "$round" "$PAIRS" "$(cut -d' ' -f1 /proc/loadavg)" "$line"
	unset got line
done

# ratio NAME VALUES...: "NAME median (min-max)".
ratio() {
	local name=$1 med lo hi
	shift
	read -r med lo hi < <(summary "$@")
	printf '%-13s %.3f (%.3f-%.3f)' "$name" "$med" "$lo" "$hi"
}

echo
printf '%-16s %-7s %12s %8s %8s %11s %12s  %s\n' server payload datagrams/s "p50 µs" "p99 µs" "server CPU" "per CPU-s" "ratio: median (min-max)"
for run in "udpd ascii" "${compared[@]}"; do
	name=${run% *} payload=${run#* }
	read -r m_dps _ < <(summary ${dps[$run]})
	read -r m_eff _ < <(summary ${eff[$run]})
	read -r m_p50 _ < <(summary ${p50[$run]})
	read -r m_p99 _ < <(summary ${p99[$run]})
	read -r m_cpu _ < <(summary ${cpu[$run]})
	case $run in
	"cref ascii") r="$(ratio udpd/C "${r_c[@]}")  $(ratio "per CPU" "${e_c[@]}")" ;;
	"naive ascii") r=$(ratio udpd/naive "${r_naive[@]}") ;;
	"udpd utf8") r=$(ratio utf8/ascii "${r_utf8[@]}") ;;
	"udpd watched") r=$(ratio watched/ascii "${r_watch[@]}") ;;
	"base ascii") r="$(ratio udpd/base "${r_base[@]}")  $(ratio "per CPU" "${e_base[@]}")" ;;
	*) r="" ;;
	esac
	printf '%-16s %-7s %12.0f %8.0f %8.0f %10.0f%% %12.0f  %s\n' "${label[$name]}" "$payload" "$m_dps" "$m_p50" "$m_p99" "$m_cpu" "$m_eff" "$r"
done
echo "(medians over $PAIRS rounds; server CPU is the share of one core the server used while loaded;"
echo " per CPU-s is datagrams per second of the server's CPU time, which other load on the machine"
echo " disturbs less than the rate; a \"per CPU\" ratio compares those within each pair)"

# bar NAME BAR VALUES...: prints the bar line for the median of VALUES.
bar() {
	local name=$1 want=$2 med verdict
	shift 2
	read -r med _ < <(summary "$@")
	verdict=$(awk -v m="$med" -v w="$want" 'BEGIN { print (m >= w ? "PASS" : "FAIL") }')
	printf '  %-14s %.3f   bar >= %-5s %s\n' "$name" "$med" "$want" "$verdict"
}
echo
echo "bars (issue 4), on the median ratio:"
((${#r_c[@]} == 0)) || bar udpd/C "$BAR_C" "${r_c[@]}"
((${#r_utf8[@]} == 0)) || bar utf8/ascii "$BAR_UTF8" "${r_utf8[@]}"
((${#r_watch[@]} == 0)) || bar watched/ascii "$BAR_WATCH" "${r_watch[@]}"

c_cpu=100
[[ -z ${cpu[cref ascii]:-} ]] || read -r c_cpu _ < <(summary ${cpu[cref ascii]})
if awk -v c="$c_cpu" 'BEGIN { exit !(c < 90) }'; then
	echo
	printf 'note: the C reference used only %.0f%% of its core: the load generator, not the servers, set the\n' "$c_cpu"
	echo "      pace, so udpd/C is nearer 1 than the servers' own speeds would make it."
fi

if ((${#mismatched_runs[@]} > 0)); then
	echo
	echo "FAILED: replies did not match the expected uppercase:" >&2
	printf '  %s\n' "${mismatched_runs[@]}" >&2
	exit 1
fi
