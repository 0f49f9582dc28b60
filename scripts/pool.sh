#!/usr/bin/env bash
# A pool of xapid hosts on this machine, for trying things out (`make pool`,
# `make pool-stop`): host N serves on 127.0.0.N:PORT (raft on PORT+1), data
# under DIR/hostN, log in DIR/hostN.log. Hosts 2..N join host 1's pool with
# pool.join the first time; later starts reuse the data dirs (the pool is kept).
#
#   scripts/pool.sh start|stop|status
#
# Environment: XAPID_BIN (default bin/xapid), POOL_PORT (8080), POOL_DATA
# (var/pool), POOL_HOSTS (3), XAPI_ROOT_PASSWORD (default xapi-go-pool).
# Linux routes all of 127.0.0.0/8 to the loopback interface; elsewhere add the
# addresses first (macOS: sudo ifconfig lo0 alias 127.0.0.2 up, ...).
set -euo pipefail

BIN=${XAPID_BIN:-bin/xapid}
PORT=${POOL_PORT:-8080}
DIR=${POOL_DATA:-var/pool}
N=${POOL_HOSTS:-3}
PW=${XAPI_ROOT_PASSWORD:-xapi-go-pool}

alive() { [ -f "$DIR/host$1/xapid.pid" ] && kill -0 "$(cat "$DIR/host$1/xapid.pid")" 2>/dev/null; }

start() {
	mkdir -p "$DIR"
	for i in $(seq 1 "$N"); do
		if alive "$i"; then
			echo "== host$i already running (pid $(cat "$DIR/host$i/xapid.pid"))"
			continue
		fi
		mkdir -p "$DIR/host$i"
		XAPI_ROOT_PASSWORD="$PW" nohup "$BIN" serve --data-dir "$DIR/host$i" \
			--listen "127.0.0.$i:$PORT" --hostname "host$i" >>"$DIR/host$i.log" 2>&1 </dev/null &
		echo $! >"$DIR/host$i/xapid.pid"
		echo "== host$i: http://127.0.0.$i:$PORT/ (pid $!, log $DIR/host$i.log)"
	done
	for i in $(seq 2 "$N"); do
		[ -e "$DIR/host$i/pool-joined" ] && continue
		XAPI_ROOT_PASSWORD="$PW" "$BIN" pool-join --url "http://127.0.0.$i:$PORT" --master 127.0.0.1
		touch "$DIR/host$i/pool-joined"
	done
	XAPI_ROOT_PASSWORD="$PW" "$BIN" pool-wait --url "http://127.0.0.1:$PORT" --hosts "$N"
	if [ -n "${XAPI_ROOT_PASSWORD:-}" ]; then
		echo "== root password: the value of \$XAPI_ROOT_PASSWORD"
	else
		echo "== root password: $PW (set XAPI_ROOT_PASSWORD before the first \`make pool\` to choose one)"
	fi
	echo "== hosts:"
	for i in $(seq 1 "$N"); do echo "   http://127.0.0.$i:$PORT/"; done
	echo "== a member answers session.login_with_password with HOST_IS_SLAVE [master address]"
	echo "== stop with: make pool-stop   (data kept in $DIR; rm -rf $DIR for a new pool)"
}

stop() {
	local pids=()
	for i in $(seq 1 "$N"); do
		if alive "$i"; then
			pid=$(cat "$DIR/host$i/xapid.pid")
			kill -TERM "$pid"
			pids+=("$pid")
			echo "== host$i: stopping (pid $pid)"
		fi
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		if kill -0 "$pid" 2>/dev/null; then echo "== pid $pid still running after 30s; killing it"; kill -KILL "$pid"; fi
	done
	for i in $(seq 1 "$N"); do rm -f "$DIR/host$i/xapid.pid"; done
	echo "== pool stopped"
}

status() {
	for i in $(seq 1 "$N"); do
		if alive "$i"; then echo "host$i: running (pid $(cat "$DIR/host$i/xapid.pid")) http://127.0.0.$i:$PORT/"; else echo "host$i: stopped"; fi
	done
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
