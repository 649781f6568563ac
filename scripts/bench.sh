#!/usr/bin/env bash
# scripts/bench.sh — `make bench`: Fusion against a fast fake upstream,
# measured in one run next to the same upstream called directly and
# through an nginx reverse proxy (the reference).  docs/BENCHMARKS.md says
# what is measured and why; this script rewrites its results section.
#
#   make bench                      # the whole thing, about 5 minutes on 2 cores
#   BENCH_ROUNDS=1 scripts/bench.sh     # one round while working on it
#
# What it does:
#   1. builds build/fusion, build/tools/fast_upstream and build/tools/slow_streams
#      (through make, nothing else);
#   2. starts, on 127.0.0.1 and free ports: the fast upstream (one thread per
#      CPU), nginx (generated config in a temp dir, worker_processes = nproc,
#      keepalive to the upstream, proxy_buffering off) and Fusion (temp
#      database, WORKERS = nproc, LOG_LEVEL=warn), and configures Fusion
#      through its admin API (provider, model, client key);
#   3. wrk with scripts/bench/chat.lua: non-streaming and streaming chat
#      completions at each connection count, for direct / nginx / fusion
#      back to back, BENCH_DURATION seconds each, the whole series
#      BENCH_ROUNDS times (the report takes the median round of each cell:
#      on a shared 2-CPU machine one run alone can be off by a third);
#      CPU time (utime+stime from
#      /proc/<pid>/stat) and peak RSS (VmHWM, reset before each run through
#      /proc/<pid>/clear_refs) of the process(es) serving the run;
#   4. build/tools/slow_streams: BENCH_SLOW_STREAMS streams held at once,
#      one event every BENCH_SLOW_DELAY_MS ms, BENCH_SLOW_EVENTS events each,
#      direct / nginx / fusion;
#   5. stops Fusion (SIGTERM), counts its request_logs rows, and hands the
#      results to scripts/bench/report.mjs, which prints a summary and
#      rewrites the results section of docs/BENCHMARKS.md (BENCH_REPORT).
#
# Every process it starts is stopped on exit, whatever the exit.  The temp
# dir (logs, configs, raw results) is removed unless the run failed or
# BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=${BENCH_DURATION:-4}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-16 64 256}
SLOW_STREAMS=${BENCH_SLOW_STREAMS:-4096}
SLOW_EVENTS=${BENCH_SLOW_EVENTS:-50}
SLOW_DELAY_MS=${BENCH_SLOW_DELAY_MS:-100}
REPORT=${BENCH_REPORT:-docs/BENCHMARKS.md}
NPROC=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
ADMIN_PASSWORD=bench-admin-password
MODEL=bench-model

# The command as typed, for the report: `make bench` sets BENCH_COMMAND;
# BENCH_* overrides in the environment are part of it.
cmd_prefix=""
for v in BENCH_FUSION_BIN BENCH_DURATION BENCH_ROUNDS BENCH_WARMUP BENCH_CONNS BENCH_SLOW_STREAMS BENCH_SLOW_EVENTS BENCH_SLOW_DELAY_MS; do
	if [ -n "${!v:-}" ]; then cmd_prefix+="$v='${!v}' "; fi
done
COMMAND="${cmd_prefix}${BENCH_COMMAND:-scripts/bench.sh}"

say() { printf '%s\n' "bench: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

for t in wrk curl node sqlite3; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/deps.sh installs it)"
done
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || die "nginx is missing (scripts/deps.sh installs it)"

# ---- build (through make only) -------------------------------------------

# BENCH_FUSION_BIN measures another Fusion binary (and skips building one).
if [ -n "${BENCH_FUSION_BIN:-}" ]; then
	FUSION=$(realpath "$BENCH_FUSION_BIN")
	make --no-print-directory build/tools/fast_upstream build/tools/slow_streams >&2
else
	FUSION=$ROOT/build/fusion
	make --no-print-directory build/fusion build/tools/fast_upstream build/tools/slow_streams >&2
fi
UPSTREAM=$ROOT/build/tools/fast_upstream
SLOW=$ROOT/build/tools/slow_streams
STALE=""
if [ -n "$(find src -newer "$FUSION" \( -name '*.c' -o -name '*.h' \) -print -quit)" ]; then
	STALE="build/fusion is older than some files under src/ (make did not rebuild it)"
	say "WARNING: $STALE"
fi
[ -z "${BENCH_FUSION_BIN:-}" ] || STALE="measured $FUSION (BENCH_FUSION_BIN), not a build of this tree"

# 4096 streams through a proxy: a client socket and an upstream socket each.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
NOFILE=$(ulimit -n)
[ "$NOFILE" -ge $((SLOW_STREAMS * 2 + 256)) ] || die "open-file limit $NOFILE is too low for $SLOW_STREAMS streams"

# ---- processes and cleanup -----------------------------------------------

T=$(mktemp -d /tmp/fusion-bench.XXXXXX)
PIDS=()
OK=0
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$OK" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$T"
	else
		say "logs and raw results kept in $T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# wait_http URL SECONDS: until URL answers anything at all.
wait_http() {
	for _ in $(seq $(($2 * 20))); do
		curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.05
	done
	return 1
}

# ---- fast upstream -------------------------------------------------------

"$UPSTREAM" --threads "$NPROC" >"$T/upstream.out" 2>"$T/upstream.err" &
UP_PID=$!
PIDS+=("$UP_PID")
for _ in $(seq 100); do
	grep -q 'listening on' "$T/upstream.out" 2>/dev/null && break
	sleep 0.05
done
UP_PORT=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\).*/\1/p' "$T/upstream.out")
[ -n "$UP_PORT" ] || die "the fast upstream did not start: $(cat "$T/upstream.err")"
UP_URL=http://127.0.0.1:$UP_PORT
say "fast upstream on $UP_URL (pid $UP_PID)"

# ---- nginx ---------------------------------------------------------------

NG_PORT=$(free_port)
mkdir -p "$T/nginx/tmp"
{
	[ "$(id -u)" = 0 ] && echo "user root;"
	cat <<EOF
worker_processes $NPROC;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events {
    worker_connections $((NOFILE - 64));
}
http {
    # nginx's default: one access-log line per request (Fusion logs every
    # request too).
    access_log $T/nginx/access.log;
    client_body_temp_path $T/nginx/tmp/body;
    proxy_temp_path $T/nginx/tmp/proxy;
    fastcgi_temp_path $T/nginx/tmp/fastcgi;
    uwsgi_temp_path $T/nginx/tmp/uwsgi;
    scgi_temp_path $T/nginx/tmp/scgi;
    keepalive_requests 1000000;
    upstream fast_upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NG_PORT;
        location / {
            proxy_pass http://fast_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 120s;
        }
    }
}
EOF
} >"$T/nginx/nginx.conf"
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" >"$T/nginx/stdout" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
NG_URL=http://127.0.0.1:$NG_PORT
wait_http "$NG_URL/" 10 || die "nginx did not start: $(cat "$T/nginx/error.log" "$T/nginx/stdout" 2>/dev/null)"
NG_PIDS="$NG_PID $(ps -o pid= --ppid "$NG_PID" | tr '\n' ' ')"
say "nginx on $NG_URL (pids $NG_PIDS)"

# ---- Fusion --------------------------------------------------------------

FU_PORT=$(free_port)
env -i PATH="$PATH" PORT="$FU_PORT" LISTEN_ADDR=127.0.0.1 DB_PATH="$T/fusion.db" WORKERS="$NPROC" \
	LOG_LEVEL=warn FUSION_ADMIN_PASSWORD="$ADMIN_PASSWORD" "$FUSION" >"$T/fusion.log" 2>&1 &
FU_PID=$!
PIDS+=("$FU_PID")
FU_URL=http://127.0.0.1:$FU_PORT
for _ in $(seq 200); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$FU_URL/healthz")" = 200 ] && break
	kill -0 "$FU_PID" 2>/dev/null || die "fusion exited at start: $(cat "$T/fusion.log")"
	sleep 0.05
done
say "fusion on $FU_URL (pid $FU_PID, $("$FUSION" --version))"

json_get() { # json_get FIELD < json
	node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];if(v===undefined||v===null)process.exit(1);console.log(v)})' "$1"
}
# admin METHOD PATH BODY: the answer's body; dies unless 2xx.
admin() {
	local out code
	out=$(curl -sS -X "$1" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} \
		--data "$3" -w '\n%{http_code}' "$FU_URL$2")
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	case "$code" in 2??) printf '%s' "$out" ;; *) die "$1 $2 answered $code: $out" ;; esac
}
TOKEN=""
TOKEN=$(admin POST /api/auth/login "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" | json_get token)
PROVIDER_ID=$(admin POST /api/admin/providers \
	"{\"name\":\"bench-upstream\",\"type\":\"openai\",\"base_url\":\"$UP_URL/v1\",\"api_key\":\"sk-bench-upstream\"}" | json_get id)
admin POST /api/admin/models "{\"name\":\"$MODEL\",\"provider_id\":$PROVIDER_ID}" >/dev/null
CLIENT_KEY=$(admin POST /api/admin/keys '{"name":"bench"}' | json_get key)
for _ in $(seq 100); do
	curl -s -H "authorization: Bearer $CLIENT_KEY" "$FU_URL/v1/models" | grep -q "\"$MODEL\"" && break
	sleep 0.05
done
sleep 0.1 # every worker picks up the new snapshot

# ---- targets -------------------------------------------------------------

url_of() {
	case $1 in
	direct) echo "$UP_URL/v1/chat/completions" ;;
	nginx) echo "$NG_URL/v1/chat/completions" ;;
	fusion) echo "$FU_URL/v1/chat/completions" ;;
	esac
}
key_of() { if [ "$1" = fusion ]; then echo "$CLIENT_KEY"; fi; }
# The process(es) whose CPU and memory a run is charged to.
pids_of() {
	case $1 in
	direct) echo "$UP_PID" ;;
	nginx) echo "$NG_PIDS" ;;
	fusion) echo "$FU_PID" ;;
	esac
}

# Check each target once: a completion and a stream come back whole.
for target in direct nginx fusion; do
	auth=()
	if [ "$target" = fusion ]; then auth=(-H "authorization: Bearer $CLIENT_KEY"); fi
	body=$(curl -sS "${auth[@]}" -H 'content-type: application/json' \
		--data "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$(url_of $target)")
	case "$body" in *'"chat.completion"'*) ;; *) die "$target: unexpected answer: $body" ;; esac
	body=$(curl -sS -N "${auth[@]}" -H 'content-type: application/json' \
		--data "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}" "$(url_of $target)")
	case "$body" in *'data: [DONE]'*) ;; *) die "$target: unexpected stream: $body" ;; esac
done
say "all three targets answer; $ROUNDS rounds of ${DURATION}s runs, connections: $CONNS"

# ---- measuring -------------------------------------------------------------

# Sum of utime+stime (clock ticks) of the given pids, threads included.
cpu_ticks() {
	local pid sum=0 rest
	for pid in "$@"; do
		read -r rest <"/proc/$pid/stat" || continue
		rest=${rest##*) }
		# shellcheck disable=SC2086
		set -- $rest
		sum=$((sum + ${12} + ${13}))
	done
	echo $sum
}
hwm_kb() {
	local pid sum=0 v
	for pid in "$@"; do
		v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}
rss_kb() {
	local pid sum=0 v
	for pid in "$@"; do
		v=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}
reset_hwm() {
	local pid
	for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || HWM_RESET=0; done
}
HWM_RESET=1

# TcpExt counters (ListenOverflows ListenDrops ...) as "name=value ..." .
tcpext() {
	awk -v want="$*" '$1 == "TcpExt:" { if (!names) { names = $0; next } split(names, n); split(want, w);
		for (i = 2; i <= NF; i++) for (j in w) if (n[i] == w[j]) printf "%s=%s ", n[i], $i; exit }' /proc/net/netstat
}
# JSON object of the growth of TcpExt counters between two tcpext outputs.
tcpext_delta() {
	local a=$1 b=$2 out="" kv k v0
	for kv in $b; do
		k=${kv%%=*}
		v0=$(tr ' ' '\n' <<<"$a" | sed -n "s/^$k=//p")
		out+="${out:+,}\"$k\":$((${kv#*=} - ${v0:-0}))"
	done
	echo "{$out}"
}
TCPEXT_NAMES="ListenOverflows ListenDrops TCPReqQFullDrop SyncookiesSent"
# Tcp ActiveOpens of /proc/net/snmp: TCP connections this machine started.
tcp_active_opens() {
	awk '$1 == "Tcp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "ActiveOpens") n = i; next } print $n; exit }' /proc/net/snmp
}
# CPU seconds of Fusion's threads grouped by thread name, as JSON.
fusion_threads() {
	local t name ticks rest
	declare -A by=()
	for t in /proc/"$FU_PID"/task/*; do
		read -r name <"$t/comm" || continue
		read -r rest <"$t/stat" || continue
		rest=${rest##*) }
		# shellcheck disable=SC2086
		set -- $rest
		ticks=$((${12} + ${13}))
		by[$name]=$((${by[$name]:-0} + ticks))
	done
	local out="" k
	for k in "${!by[@]}"; do out+="${out:+,}\"$k\":$(awk "BEGIN{print ${by[$k]}/$CLK_TCK}")"; done
	echo "{$out}"
}

# Fusion's log writer counters ({"written":..,"dropped":..,"queued":..}) from
# GET /api/admin/stats, or null.
fusion_logw() {
	curl -s --max-time 10 -H "authorization: Bearer $TOKEN" "$FU_URL/api/admin/stats" |
		node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.stringify(JSON.parse(s).log_writer??null))}catch{console.log("null")}})'
}

alive() { kill -0 "$1" 2>/dev/null; }
RESULTS=$T/results.jsonl
: >"$RESULTS"
FUSION_DIED=""
check_fusion() {
	if [ -z "$FUSION_DIED" ] && ! alive "$FU_PID"; then
		local rc=0
		wait "$FU_PID" || rc=$?
		FUSION_DIED="fusion exited (status $rc) during the run before: $1"
		say "ERROR: $FUSION_DIED; its log ends with:"
		tail -n 20 "$T/fusion.log" >&2
	fi
}

# wrk_run TARGET MODE CONNS SECONDS KIND ROUND  (KIND: wrk = measured, warmup = not shown)
wrk_run() {
	local target=$1 mode=$2 conns=$3 secs=$4 kind=$5 round=${6:-0}
	local pids out c0 c1 u0 u1 o0 o1 hwm logw stream=0
	if [ "$target" = fusion ] && [ -n "$FUSION_DIED" ]; then return 0; fi
	[ "$mode" = stream ] && stream=1
	pids=$(pids_of "$target")
	out=$T/$kind-$target-$mode-$conns-$round.json
	: >"$out"
	# shellcheck disable=SC2086
	reset_hwm $pids
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $pids)
	u0=$(cpu_ticks "$UP_PID")
	o0=$(tcp_active_opens)
	BENCH_OUT=$out BENCH_STREAM=$stream BENCH_KEY=$(key_of "$target") BENCH_MODEL=$MODEL \
		BENCH_LABEL="$target $mode c=$conns" \
		wrk -t "$NPROC" -c "$conns" -d "${secs}s" --timeout 10s -s scripts/bench/chat.lua "$(url_of "$target")" \
		>>"$T/wrk.log" 2>&1 || say "wrk failed for $target $mode c=$conns (see $T/wrk.log)"
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $pids)
	u1=$(cpu_ticks "$UP_PID")
	o1=$(tcp_active_opens)
	# shellcheck disable=SC2086
	hwm=$(hwm_kb $pids)
	check_fusion "$target $mode c=$conns"
	logw=null
	if [ "$target" = fusion ] && [ -z "$FUSION_DIED" ]; then logw=$(fusion_logw); fi
	if [ -s "$out" ]; then
		printf '{"kind":"%s","round":%s,"target":"%s","mode":"%s","conns":%s,"cpu_s":%s,"upstream_cpu_s":%s,"hwm_kb":%s,"tcp_connects":%s,"log_writer":%s,"wrk":%s}\n' \
			"$kind" "$round" "$target" "$mode" "$conns" "$(awk "BEGIN{print ($c1-$c0)/$CLK_TCK}")" \
			"$(awk "BEGIN{print ($u1-$u0)/$CLK_TCK}")" "$hwm" $((o1 - o0)) "$logw" "$(head -n1 "$out")" >>"$RESULTS"
		[ "$kind" = warmup ] || node scripts/bench/report.mjs line "$(tail -n1 "$RESULTS")" >&2
	else
		say "no wrk result for $target $mode c=$conns (see $T/wrk.log)"
	fi
	sleep 0.5
}

# slow_run TARGET
slow_run() {
	local target=$1 pids out c0 c1 hwm key n0 n1 o0 o1 rss logw
	if [ "$target" = fusion ] && [ -n "$FUSION_DIED" ]; then return 0; fi
	pids=$(pids_of "$target")
	out=$T/slow-$target.json
	key=$(key_of "$target")
	# shellcheck disable=SC2086
	reset_hwm $pids
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $pids)
	n0=$(tcpext "$TCPEXT_NAMES")
	o0=$(tcp_active_opens)
	"$SLOW" --url "$(url_of "$target")" ${key:+--key "$key"} --streams "$SLOW_STREAMS" \
		--events "$SLOW_EVENTS" --delay-ms "$SLOW_DELAY_MS" --label "$target" >"$out" 2>>"$T/slow.log" ||
		say "slow_streams failed for $target (see $T/slow.log)"
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $pids)
	# shellcheck disable=SC2086
	hwm=$(hwm_kb $pids)
	n1=$(tcpext "$TCPEXT_NAMES")
	o1=$(tcp_active_opens)
	# shellcheck disable=SC2086
	rss=$(rss_kb $pids)
	check_fusion "$target slow streams"
	logw=null
	if [ "$target" = fusion ] && [ -z "$FUSION_DIED" ]; then logw=$(fusion_logw); fi
	if [ -s "$out" ]; then
		printf '{"kind":"slow","target":"%s","cpu_s":%s,"hwm_kb":%s,"rss_after_kb":%s,"tcp_connects":%s,"log_writer":%s,"tcpext":%s,"streams":%s}\n' "$target" \
			"$(awk "BEGIN{print ($c1-$c0)/$CLK_TCK}")" "$hwm" "$rss" $((o1 - o0)) "$logw" "$(tcpext_delta "$n0" "$n1")" "$(head -n1 "$out")" >>"$RESULTS"
		node scripts/bench/report.mjs line "$(tail -n1 "$RESULTS")" >&2
	fi
	sleep 1
}

# CPU time the hypervisor gave to others (steal) while the bench ran: on a
# shared VM it makes every number noisier.
cpu_steal() { awk '$1 == "cpu" { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T0=$(date +%s)
read -r STEAL0 TOTAL0 <<<"$(cpu_steal)"
say "warm-up: ${WARMUP}s per target and mode at 64 connections"
for target in direct nginx fusion; do
	wrk_run "$target" json 64 "$WARMUP" warmup
	wrk_run "$target" stream 64 "$WARMUP" warmup
done
for round in $(seq "$ROUNDS"); do
	say "round $round of $ROUNDS"
	for mode in json stream; do
		for conns in $CONNS; do
			for target in direct nginx fusion; do
				wrk_run "$target" "$mode" "$conns" "$DURATION" wrk "$round"
			done
		done
	done
done
say "slow streams: $SLOW_STREAMS at once, $SLOW_EVENTS events ${SLOW_DELAY_MS} ms apart"
for target in direct nginx fusion; do
	slow_run "$target"
done

# ---- Fusion's request log, then the report ---------------------------------

FUSION_EXIT=""
FUSION_ROWS=""
FUSION_THREADS="{}"
FUSION_LOGW=null
if [ -z "$FUSION_DIED" ]; then
	FUSION_THREADS=$(fusion_threads)
	# The log writer's own counters (written, dropped, queued) since start.
	FUSION_LOGW=$(fusion_logw)
	kill -TERM "$FU_PID"
	rc=0
	wait "$FU_PID" || rc=$?
	FUSION_EXIT=$rc
	FUSION_ROWS=$(sqlite3 -readonly "$T/fusion.db" 'SELECT count(*) FROM request_logs' 2>/dev/null || echo "")
	FUSION_OUTCOMES=$(sqlite3 -readonly "$T/fusion.db" \
		"SELECT outcome || ' ' || status_code || ': ' || count(*) FROM request_logs GROUP BY outcome, status_code ORDER BY count(*) DESC" 2>/dev/null | paste -sd ';' - || echo "")
fi
ELAPSED=$(($(date +%s) - T0))
read -r STEAL1 TOTAL1 <<<"$(cpu_steal)"
STEAL_PCT=$(awk "BEGIN{t=$TOTAL1-$TOTAL0; printf \"%.1f\", (t > 0 ? 100*($STEAL1-$STEAL0)/t : 0)}")
FUSION_WARNINGS=$(grep -ciE 'warn|error' "$T/fusion.log" || true)

node -e 'const [,...a]=process.argv;const o={};for(let i=0;i<a.length;i+=2)o[a[i]]=a[i+1];console.log(JSON.stringify(o))' \
	date "$STARTED" elapsed_s "$ELAPSED" command "$COMMAND" nproc "$NPROC" \
	cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" \
	mem_total "$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
	kernel "$(uname -sr)" \
	fusion_version "$("$FUSION" --version)" \
	git_rev "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (uncommitted changes in the tree)')" \
	stale "$STALE" \
	nginx_version "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')" \
	wrk_version "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')" \
	duration_s "$DURATION" rounds "$ROUNDS" conns "$CONNS" slow_streams "$SLOW_STREAMS" slow_events "$SLOW_EVENTS" \
	slow_delay_ms "$SLOW_DELAY_MS" hwm_reset "$HWM_RESET" steal_pct "$STEAL_PCT" \
	fusion_died "$FUSION_DIED" fusion_exit "$FUSION_EXIT" fusion_rows "$FUSION_ROWS" \
	fusion_outcomes "${FUSION_OUTCOMES:-}" fusion_threads "$FUSION_THREADS" fusion_log_writer "$FUSION_LOGW" fusion_log_warnings "$FUSION_WARNINGS" \
	fusion_log_tail "$(grep -iE 'warn|error' "$T/fusion.log" | tail -n 5 || true)" \
	>"$T/meta.json"

node scripts/bench/report.mjs report "$T/meta.json" "$RESULTS" "$REPORT"
OK=1
[ -z "$FUSION_DIED" ] || exit 1
