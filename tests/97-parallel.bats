#!/usr/bin/env bats
# The GNU parallel recipe (README, "Sharding across machines"):
# scripts/vec-shard-build, vec-shard-query and vec-shard-rebuild.  Exact
# shards built and searched by parallel answer as one index, byte for byte:
# with -j2 on this machine, and over ssh between two hosts that the test
# makes (network namespaces, each with its own sshd), sharing the files or
# (--transfer) not.  Then the cron rebuild's lock, and every refusal.
#
# The ssh tests need root, ip(8) with network namespaces, sshd and ssh
# (Debian: iproute2, openssh-server, openssh-client), and rsync for
# --transfer; without them they skip, saying why.  Their network: a client
# namespace (where parallel runs) linked by a veth pair to each of two host
# namespaces, 10.231.1.0/24 and 10.231.2.0/24, private to the namespaces
# (so no address of this machine is touched or can collide).  Each host
# runs two sshds: one on .2 that sees the file system as it is, and one on
# .3 that sees an empty tmpfs in place of the directory the --transfer test
# works in (a host that shares nothing with the client).

bats_require_minimum_version 1.5.0
load test_helper

SCRIPTS="$BATS_TEST_DIRNAME/../scripts"
B="$DATA/digits/base.fvecs"
Q="$DATA/digits/query.fvecs"
REC=$((4 + 64 * 4)) # bytes of one digits fvecs record

# The scripts, with the binaries under test, under a time limit.
shard_build() { timeout -k 5 "$VEC_TIMEOUT" env VEC_BIN="$VEC_BIN" "$SCRIPTS/vec-shard-build" "$@"; }
shard_query() { timeout -k 5 "$VEC_TIMEOUT" env VEC_BIN="$VEC_BIN" "$SCRIPTS/vec-shard-query" "$@"; }
shard_rebuild() { timeout -k 5 "$VEC_TIMEOUT" env VEC_BIN="$VEC_BIN" "$SCRIPTS/vec-shard-rebuild" "$@"; }

need_parallel() {
	command -v parallel >/dev/null || skip "GNU parallel is not installed (Debian: parallel)"
}

# One flat index of the whole input, with stored ids: what the shards
# must answer as.  one_index OUT.vec [VEC-BUILD-OPTION...] INPUT
one_index() {
	local out=$1
	shift
	vec_build -q -t flat --id-start 0 -o "$out" "$@"
}

# Two files differ (a bare "! cmp" would not fail a test).
assert_differ() {
	if cmp -s "$1" "$2"; then
		echo "$1 and $2 are the same"
		return 1
	fi
}

# The counts of the shards DIR/shard*.vec add up to N: count_sum DIR N.
count_sum() {
	local f total=0 c
	for f in "$1"/shard*.vec; do
		c=$(vec_stat "$f" | awk '$1 == "count:" { print $2 }')
		[ "$c" -gt 0 ] || { echo "$f is empty"; return 1; }
		total=$((total + c))
	done
	assert_eq "$total" "$2"
}

# ---- the network of the ssh tests (set up once, in setup_file) ----------

# net_up: two hosts reachable by ssh from the client namespace, or a reason
# in $NET/skip (the machine does not allow it) or $NET/error (it should
# have worked).  Everything made is listed in $NET for net_down.
net_up() {
	local sshd h n v cfg i
	mkdir -p "$NET"
	skip_net() { echo "$1" >"$NET/skip"; }
	[ "$(id -u)" = 0 ] || { skip_net "network namespaces and sshd need root"; return; }
	command -v ip >/dev/null || { skip_net "ip(8) is not installed (Debian: iproute2)"; return; }
	sshd=$(command -v sshd || echo /usr/sbin/sshd)
	[ -x "$sshd" ] || { skip_net "sshd is not installed (Debian: openssh-server)"; return; }
	command -v ssh >/dev/null && command -v ssh-keygen >/dev/null ||
		{ skip_net "ssh is not installed (Debian: openssh-client)"; return; }
	command -v parallel >/dev/null || { skip_net "GNU parallel is not installed (Debian: parallel)"; return; }
	command -v unshare >/dev/null || { skip_net "unshare(1) is not installed (Debian: util-linux)"; return; }

	# Names unique to this run; the links live inside the namespaces.
	NS=vecutils-t$$
	echo "$NS" >"$NET/ns"
	for h in c a b; do
		if ! v=$(ip netns add "$NS-$h" 2>&1); then
			skip_net "this machine does not allow network namespaces (ip netns add: $v)"
			return
		fi
		echo "$NS-$h" >>"$NET/namespaces"
	done
	for h in a b; do
		n=1
		[ "$h" = b ] && n=2
		if ! v=$(ip -n "$NS-c" link add "to-$h" type veth peer name eth0 netns "$NS-$h" 2>&1); then
			skip_net "this machine does not allow a veth pair between namespaces ($v)"
			return
		fi
		ip -n "$NS-c" addr add "10.231.$n.1/24" dev "to-$h" &&
			ip -n "$NS-$h" addr add "10.231.$n.2/24" dev eth0 &&
			ip -n "$NS-$h" addr add "10.231.$n.3/24" dev eth0 &&
			ip -n "$NS-c" link set "to-$h" up &&
			ip -n "$NS-$h" link set eth0 up &&
			ip -n "$NS-$h" link set lo up || { echo "cannot configure the link to host $h" >"$NET/error"; return; }
	done
	ip -n "$NS-c" link set lo up

	ssh-keygen -q -t ed25519 -N '' -C vecutils-test-host -f "$NET/host_key" </dev/null &&
		ssh-keygen -q -t ed25519 -N '' -C vecutils-test -f "$NET/id" </dev/null &&
		cp "$NET/id.pub" "$NET/authorized_keys" || { echo "ssh-keygen failed" >"$NET/error"; return; }
	# The client: no host key checks, no agent, no prompt, time limits;
	# one connection a host, shared by parallel's many ssh runs (when the
	# socket's path is short enough).
	cat >"$NET/ssh_config" <<EOF
Host *
	User $(id -un)
	IdentityFile $NET/id
	IdentitiesOnly yes
	IdentityAgent none
	StrictHostKeyChecking no
	UserKnownHostsFile /dev/null
	LogLevel ERROR
	BatchMode yes
	ConnectTimeout 5
	ServerAliveInterval 5
	ServerAliveCountMax 3
EOF
	if [ ${#NET} -lt 70 ]; then
		printf '\tControlMaster auto\n\tControlPath %s/cm-%%h\n\tControlPersist 60\n' "$NET" >>"$NET/ssh_config"
	fi
	# sshd's privilege separation directory (its package makes it at boot)
	if [ ! -d /run/sshd ]; then
		mkdir -p /run/sshd && touch "$NET/made-run-sshd"
	fi
	mkdir -p "$HERE"
	for h in a b; do
		n=1
		[ "$h" = b ] && n=2
		for i in 2 3; do
			cfg=$NET/sshd-$h$i.conf
			# SHLVL=1: the sessions' bash does not read the login
			# user's ~/.bashrc (the hosts run commands only).
			cat >"$cfg" <<EOF
ListenAddress 10.231.$n.$i
Port 22
HostKey $NET/host_key
AuthorizedKeysFile $NET/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100
MaxSessions 100
SetEnv SHLVL=1
EOF
			if [ "$i" = 2 ]; then
				ip netns exec "$NS-$h" "$sshd" -D -e -f "$cfg" \
					</dev/null >"$NET/sshd-$h$i.log" 2>&1 3>&- &
			else
				ip netns exec "$NS-$h" unshare --mount --propagation private \
					sh -c 'mount -t tmpfs -o size=4m vecutils-test "$1" && exec "$2" -D -e -f "$3"' \
					sh "$HERE" "$sshd" "$cfg" </dev/null >"$NET/sshd-$h$i.log" 2>&1 3>&- &
			fi
		done
	done
	# Wait (at most 10 s) until each sshd lets us in.
	for h in 1.2 1.3 2.2 2.3; do
		for ((i = 0; ; i++)); do
			timeout 5 ip netns exec "$NS-c" ssh -F "$NET/ssh_config" "10.231.$h" true </dev/null 2>/dev/null && break
			if [ "$i" -ge 50 ]; then
				{ echo "sshd on 10.231.$h does not let the test in:"; cat "$NET"/sshd-*.log; } >"$NET/error"
				return
			fi
			sleep 0.2
		done
	done
}

# net_down: every process in the namespaces (the sshds, their sessions,
# ssh's connection masters), then the namespaces and with them the links.
net_down() {
	local ns pids i
	[ -f "$NET/namespaces" ] || return 0
	for i in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(while read -r ns; do ip netns pids "$ns" 2>/dev/null; done <"$NET/namespaces")
		[ -n "$pids" ] || break
		if [ "$i" -lt 10 ]; then
			kill $pids 2>/dev/null
			sleep 0.2
		else
			kill -9 $pids 2>/dev/null
		fi
	done
	while read -r ns; do ip netns del "$ns" 2>/dev/null; done <"$NET/namespaces"
	rm -f "$NET/namespaces"
	if [ -f "$NET/made-run-sshd" ]; then
		rmdir /run/sshd 2>/dev/null
	fi
	return 0
}

# The ssh tests start with need_net; in_client runs a command where
# parallel runs (the client namespace).
need_net() {
	need_parallel
	[ ! -s "$NET/skip" ] || skip "$(cat "$NET/skip")"
	if [ -s "$NET/error" ]; then
		cat "$NET/error"
		return 1
	fi
	NS=$(cat "$NET/ns")
}
in_client() { timeout -k 5 "$VEC_TIMEOUT" ip netns exec "$NS-c" "$@"; }

# Binaries that note where they ran (the server address of the ssh
# session, or "local") in $NET/where.log, then run the real ones.
where_bin() {
	local real p
	real=$(cd "$VEC_BIN" && pwd)
	mkdir -p "$NET/bin"
	for p in vec-build vec-query; do
		cat >"$NET/bin/$p" <<EOF
#!/bin/sh
set -- "\$@"
echo "\${0##*/} \$(echo "\${SSH_CONNECTION:-- - local}" | cut -d' ' -f3)" >>"$NET/where.log"
exec "$real/\${0##*/}" "\$@"
EOF
		chmod +x "$NET/bin/$p"
	done
	: >"$NET/where.log"
}
# ran PROG HOST...: PROG ran on each HOST (and nowhere else).
ran() {
	local prog=$1 got want
	shift
	got=$(awk -v p="$prog" '$1 == p { print $2 }' "$NET/where.log" | sort -u | xargs)
	want=$(printf '%s\n' "$@" | sort -u | xargs)
	assert_eq "$got" "$want"
}

setup_file() {
	# parallel keeps its files (the ssh logins' cache) here, not in ~
	export PARALLEL_HOME="$BATS_FILE_TMPDIR/parallel"
	mkdir -p "$PARALLEL_HOME"
	export NET="$BATS_FILE_TMPDIR/net"
	export HERE="$BATS_FILE_TMPDIR/here"
	net_up || :
	if [ -s "$NET/skip" ] || [ -s "$NET/error" ]; then
		net_down
	fi
}

teardown_file() {
	net_down
}

teardown() {
	if [ -n "${holder:-}" ]; then
		kill "$holder" 2>/dev/null || :
	fi
	# what a failed --transfer test left in the remote work directories
	if [ -f "$NET/remote-before" ]; then
		comm -13 "$NET/remote-before" <(remote_tmp) | while read -r d; do
			rm -rf "${REMOTE_TMP:?}/$d"
		done
		rm -f "$NET/remote-before"
	fi
}

# The entries of the hosts' parallel work area (their login directory's
# .parallel/tmp, which --workdir ... uses), but for its login cache.
REMOTE_TMP="$(getent passwd "$(id -un)" | cut -d: -f6)/.parallel/tmp"
remote_tmp() { ls -A "$REMOTE_TMP" 2>/dev/null | grep -vx sshlogin | sort || :; }


# ---- on this machine, parallel -j2 ------------------------------------------

@test "flat shards built and searched by parallel -j2 answer as one flat index, byte for byte (l2, ip)" {
	need_parallel
	# metric, shards, k, base, its count, queries, rows
	while read -r m n k base count q rows; do
		run --separate-stderr shard_build -j 2 -n "$n" -d "s-$m" "$DATA/$base" -- -t flat -m "$m" </dev/null
		expect_ok
		assert_eq "$output" ""
		assert_eq "$(ls "s-$m" | xargs)" "$(seq -f 'shard%g.vec' 0 $((n - 1)) | xargs)"
		assert_no_temp "s-$m"
		count_sum "s-$m" "$count"
		shard_query -n "$n" -d "s-$m" -k "$k" "$DATA/$q" >"sharded-$m.tsv"
		one_index "one-$m.vec" -m "$m" "$DATA/$base"
		vec_query -k "$k" "one-$m.vec" "$DATA/$q" >"one-$m.tsv"
		assert_eq "$(wc -l <"one-$m.tsv")" "$rows"
		assert_same "sharded-$m.tsv" "one-$m.tsv"
	done <<EOF
l2 4 10 digits/base.fvecs 1697 digits/query.fvecs 1000
ip 3 7 iris/base.fvecs 135 iris/query.fvecs 105
EOF
}

@test "the sharded answer in other output formats, from standard input, with vec-query options" {
	need_parallel
	shard_build -j 2 -n 4 -d s "$B" -- -t flat </dev/null
	one_index one.vec "$B"
	for f in csv jsonl fvecs; do
		vec_query -k 5 -F "$f" one.vec "$Q" >"one.$f"
		[ -s "one.$f" ]
	done
	shard_query -n 4 -d s -k 5 -F csv "$Q" >sharded.csv
	# queries on standard input (none given, or -), gzip'd; one thread a search
	gzip -n -c "$Q" >q.gz
	shard_query -n 4 -d s -k 5 -F jsonl <q.gz >sharded.jsonl
	shard_query -n 4 -d s -k 5 -F fvecs - -- -j 1 <"$Q" >sharded.fvecs
	for f in csv jsonl fvecs; do
		assert_same "sharded.$f" "one.$f"
	done
}

@test "the README's commands of one machine: the same shards, the same rows" {
	need_parallel
	PATH="$VEC_BIN:$PATH"
	cp "$B" base.fvecs
	cp "$Q" queries.fvecs
	timeout 120 parallel --will-cite -j2 vec-build -q --shard {}/4 -o shard{}.vec base.fvecs \
		::: 0 1 2 3 </dev/null
	timeout 60 vec-query -k 10 shard0.vec shard1.vec shard2.vec shard3.vec queries.fvecs >one-query.tsv
	timeout 120 parallel --will-cite vec-query --mergeable -k 10 shard{}.vec queries.fvecs \
		::: 0 1 2 3 </dev/null | timeout 60 vec-query --merge -k 10 >merged.tsv
	shard_build -j 2 -n 4 -d s base.fvecs </dev/null
	for i in 0 1 2 3; do
		assert_same "shard$i.vec" "s/shard$i.vec"
	done
	one_index one.vec base.fvecs
	vec_query -k 10 one.vec queries.fvecs >one.tsv
	assert_same one-query.tsv one.tsv
	assert_same merged.tsv one.tsv
}

@test "vec-build options after -- reach every shard (hnsw, cos), vec-query options every search" {
	need_parallel
	shard_build -j 2 -n 2 -d h "$B" -- -t hnsw -m cos -M 8 </dev/null
	for i in 0 1; do
		run --separate-stderr vec_stat "h/shard$i.vec"
		[[ "$output" == *"type:           hnsw"* ]]
		[[ "$output" == *"metric:         cos"* ]]
	done
	count_sum h 1697
	shard_query -n 2 -d h -k 10 -F fvecs "$Q" -- --ef 100 >hnsw.fvecs
	one_index one.vec -m cos "$B"
	vec_query -k 10 -F fvecs one.vec "$Q" >one.fvecs
	r=$(recall_vs one.fvecs hnsw.fvecs desc)
	echo "recall@10 of 2 hnsw shards at ef 100: $r"
	at_least "$r" 0.99
	# an option every search refuses: each shard's failure is reported
	run --separate-stderr shard_query -n 2 -d h -k 10 "$Q" -- --ef 5
	expect_err_has 1 "vec-query: --ef 5 is smaller than -k 10"
	grep -Eq '^vec-shard-query: shard [01] of 2 failed on this machine \(exit status 2\)$' <<<"$stderr"
	assert_eq "$output" ""
}

# ---- the cron rebuild ---------------------------------------------------------

@test "vec-shard-rebuild replaces the shards while queries go on answering" {
	need_parallel
	head -c $((1000 * REC)) "$B" >part.fvecs
	shard_build -n 4 -d s part.fvecs -- -t flat </dev/null
	one_index part.vec part.fvecs
	one_index all.vec "$B"
	vec_query -k 10 part.vec "$Q" >old.tsv
	vec_query -k 10 all.vec "$Q" >new.tsv
	# Queries in a loop while the rebuild runs: each gets a whole answer
	# (ids are places in the input, which the rebuild only extends: any
	# mix of old and new shards is a valid answer).
	(
		for i in $(seq 200); do
			[ -e stop ] && break
			timeout 60 env VEC_BIN="$VEC_BIN" "$SCRIPTS/vec-shard-query" -n 4 -d s "$Q" \
				>"loop-$i.tsv" 2>"loop-$i.err" || echo "$i" >>loop-failed
		done
	) </dev/null 3>&- &
	loop=$!
	sleep 0.5
	run --separate-stderr shard_rebuild -j 2 -n 4 -d s "$B" -- -t flat </dev/null
	touch stop
	wait "$loop"
	expect_ok
	assert_eq "$output" ""
	[ ! -e loop-failed ] || { cat loop-failed loop-*.err; false; }
	n=0
	for f in loop-*.tsv; do
		assert_eq "$(wc -l <"$f")" 1000
		n=$((n + 1))
	done
	echo "$n queries during the rebuild"
	shard_query -n 4 -d s "$Q" >after.tsv
	assert_same after.tsv new.tsv
	assert_differ old.tsv new.tsv
	# the lock file stays; no temporary file
	assert_eq "$(ls -A s | xargs)" ".vec-shard-rebuild.lock shard0.vec shard1.vec shard2.vec shard3.vec"
}

@test "vec-shard-rebuild: a run that finds the lock held stops (or waits with --wait)" {
	need_parallel
	head -c $((1000 * REC)) "$B" >part.fvecs
	shard_build -n 2 -d s part.fvecs -- -t flat </dev/null
	cp -r s before
	hold s/.vec-shard-rebuild.lock
	run --separate-stderr shard_rebuild -n 2 -d s "$B" -- -t flat </dev/null
	expect_err 1 "vec-shard-rebuild: s/.vec-shard-rebuild.lock: another rebuild holds the lock; not rebuilding"
	assert_eq "$output" ""
	for i in 0 1; do assert_same "s/shard$i.vec" "before/shard$i.vec"; done
	# another lock file is another lock
	run --separate-stderr shard_rebuild --lock=other.lock -n 2 -d s "$B" -- -t flat </dev/null
	expect_ok
	assert_differ s/shard0.vec before/shard0.vec
	cp before/* s/
	# --wait 30: the holder lets go after a second, and the rebuild runs
	(sleep 1 && kill "$holder") </dev/null >/dev/null 2>&1 3>&- &
	run --separate-stderr shard_rebuild --wait 30 -n 2 -d s "$B" -- -t flat </dev/null
	expect_ok
	holder=
	one_index all.vec "$B"
	vec_query -k 10 all.vec "$Q" >want.tsv
	shard_query -n 2 -d s "$Q" >got.tsv
	assert_same got.tsv want.tsv
	# the help shows a crontab line that runs this command
	run --separate-stderr "$SCRIPTS/vec-shard-rebuild" --help
	expect_ok
	grep -Eq '^  [0-9]+ [0-9]+ \* \* \*  vec-shard-rebuild -S [^ ]+ -n [0-9]+ -d ' <<<"$output"
}

# ---- refusals -------------------------------------------------------------------

@test "vec-shard-build refuses bad usage (exit 2) and missing files (exit 1), writing nothing" {
	local u=vec-shard-build
	for bad in 0 x -1 1048577 ''; do
		run --separate-stderr shard_build -n "$bad" -d s "$B"
		expect_usage $u "invalid value '$bad' for -n (expected an integer from 1 to 1048576)"
	done
	run --separate-stderr shard_build --shards=2x -d s "$B"
	expect_usage $u "invalid value '2x' for --shards (expected an integer from 1 to 1048576)"
	run --separate-stderr shard_build -d s "$B"
	expect_usage $u "no shard count given (use -n N)"
	run --separate-stderr shard_build -n 2 "$B"
	expect_usage $u "no shard directory given (use -d DIR)"
	run --separate-stderr shard_build -n 2 -d s
	expect_usage $u "no INPUT given"
	run --separate-stderr shard_build -n 2 -d s - <"$B"
	expect_usage $u "INPUT '-': standard input cannot go to several builds; give a file"
	run --separate-stderr shard_build -n 2 -d s -j 0 "$B"
	expect_usage $u "invalid value '0' for -j (expected an integer from 1 to 1024)"
	run --separate-stderr shard_build -n 2 -d s --frobnicate "$B"
	expect_usage $u "unknown option '--frobnicate'"
	run --separate-stderr shard_build -n 2 -d s --transfer=yes "$B"
	expect_usage $u "option '--transfer' takes no value"
	run --separate-stderr shard_build -n 2 -d s "$B" -S
	expect_usage $u "option '-S' needs a value"
	run --separate-stderr shard_build --transfer -S :,host1 -n 2 -d s "$B"
	expect_usage $u "--transfer needs remote hosts, not ':' (this machine, which has the files)"
	run --separate-stderr shard_build --lock=x -n 2 -d s "$B"
	expect_usage $u "unknown option '--lock' (it is vec-shard-rebuild's)"
	cp "$B" a.fvecs && mkdir sub && cp "$B" sub/a.fvecs
	run --separate-stderr shard_build --transfer -S host1 -n 2 -d s a.fvecs sub/a.fvecs
	expect_usage $u "--transfer: two INPUT files named 'a.fvecs'"
	run --separate-stderr "$SCRIPTS/vec-shard-rebuild" -n 0 -d s "$B"
	expect_usage vec-shard-rebuild "invalid value '0' for -n (expected an integer from 1 to 1048576)"
	# exit 1: a missing input, host file, empty host file
	run --separate-stderr shard_build -n 2 -d s nope.fvecs
	expect_err 1 "$u: nope.fvecs: cannot open: No such file or directory"
	run --separate-stderr shard_build -n 2 -d s "$B" sub
	expect_err 1 "$u: sub: cannot open: Is a directory"
	run --separate-stderr shard_build --sshloginfile hosts.txt -n 2 -d s "$B"
	expect_err 1 "$u: hosts.txt: cannot open: No such file or directory"
	printf '# no hosts yet\n\n   \n' >hosts.txt
	run --separate-stderr shard_build --sshloginfile=hosts.txt -n 2 -d s "$B"
	expect_err 1 "$u: hosts.txt: no hosts in the file"
	run --separate-stderr env VEC_BIN="$PWD/nowhere" "$SCRIPTS/vec-shard-build" -n 2 -d s "$B"
	expect_err 1 "$u: $PWD/nowhere/vec-build not found (put the vec-* commands on PATH or name their directory in VEC_BIN)"
	assert_absent s
	assert_no_temp .
	run --separate-stderr "$SCRIPTS/vec-shard-build" --help
	expect_ok
	[[ "$output" == "Usage: vec-shard-build [OPTION]... -n N -d DIR INPUT... [-- VEC-BUILD-OPTION...]"* ]]
}

@test "vec-shard-build: the shards whose build fails are named with their host, the others built" {
	need_parallel
	# ids 0..134, then 7 again: the shard of id 7 refuses it
	{ seq 0 134; echo 7; } >ids.txt
	cat "$DATA/iris/base.fvecs" <(head -c 20 "$DATA/iris/query.fvecs") >in.fvecs
	run --separate-stderr shard_build -j 2 -n 4 -d s in.fvecs -- -t flat --ids=ids.txt </dev/null
	assert_eq "$status" 1
	assert_eq "$(grep -c 'failed on' <<<"$stderr")" 1
	bad=$(sed -n 's/^vec-shard-build: shard \([0-3]\) of 4 failed on this machine (exit status 1)$/\1/p' <<<"$stderr")
	[ -n "$bad" ] || { _show; false; }
	[[ "$stderr" == *"vec-build: in.fvecs: vector 136: id 7 is already in the index"* ]] || { _show; false; }
	for i in 0 1 2 3; do
		if [ "$i" = "$bad" ]; then
			assert_absent "s/shard$i.vec"
		else
			vec_stat --verify -q "s/shard$i.vec"
		fi
	done
	assert_no_temp s
	# a vec-build usage error fails every shard
	run --separate-stderr shard_build -n 2 -d t in.fvecs -- -t nope </dev/null
	expect_err_has 1 "vec-build: unknown index type 'nope'" \
		"vec-shard-build: shard 0 of 2 failed on this machine (exit status 2)" \
		"vec-shard-build: shard 1 of 2 failed on this machine (exit status 2)"
}

@test "vec-shard-query refuses bad usage, missing shards and bad queries; prints nothing then" {
	need_parallel
	local u=vec-shard-query
	shard_build -n 3 -d s "$DATA/iris/base.fvecs" -- -t flat </dev/null
	for bad in 0 x 1048577; do
		run --separate-stderr shard_query -n "$bad" -d s "$DATA/iris/query.fvecs"
		expect_usage $u "invalid value '$bad' for -n (expected an integer from 1 to 1048576)"
	done
	run --separate-stderr shard_query -n 3 -d s -k 0 "$DATA/iris/query.fvecs"
	expect_usage $u "invalid value '0' for -k (expected an integer from 1 to 100000)"
	run --separate-stderr shard_query -n 3 -d s -F xml "$DATA/iris/query.fvecs"
	expect_usage $u "unknown output format 'xml' (expected tsv, csv, jsonl, ivecs or fvecs)"
	run --separate-stderr shard_query -d s "$DATA/iris/query.fvecs"
	expect_usage $u "no shard count given (use -n N)"
	run --separate-stderr shard_query -n 3 "$DATA/iris/query.fvecs"
	expect_usage $u "no shard directory given (use -d DIR)"
	run --separate-stderr shard_query -n 3 -d s "$DATA/iris/query.fvecs" "$DATA/iris/query.csv"
	expect_usage $u "one QUERIES file at most (or standard input)"
	run --separate-stderr shard_query --transfer -n 3 -d s "$DATA/iris/query.fvecs"
	expect_usage $u "--transfer needs remote hosts, not ':' (this machine, which has the files)"
	# binary output to a terminal (when script(1) can make one here)
	if command -v script >/dev/null && script -qec true /dev/null </dev/null >/dev/null 2>&1; then
		run script -qec "VEC_BIN='$VEC_BIN' '$SCRIPTS/vec-shard-query' -n 3 -d s -F fvecs q.fvecs" /dev/null </dev/null
		assert_eq "$status" 2
		[[ "$output" == *"$u: refusing to write binary fvecs output to a terminal"* ]]
	fi
	# exit 1: a shard missing, a host file missing, a query file missing
	run --separate-stderr shard_query -n 4 -d s "$DATA/iris/query.fvecs"
	expect_err 1 "$u: s/shard3.vec: cannot open: No such file or directory"
	run --separate-stderr shard_query --sshloginfile hosts.txt -n 3 -d s "$DATA/iris/query.fvecs"
	expect_err 1 "$u: hosts.txt: cannot open: No such file or directory"
	run --separate-stderr shard_query -n 3 -d s nope.fvecs
	expect_err 1 "$u: nope.fvecs: cannot open: No such file or directory"
	# a damaged shard: its search fails, named with its host; nothing printed
	cp s/shard1.vec keep.vec
	flip_byte s/shard1.vec 24
	run --separate-stderr shard_query -n 3 -d s "$DATA/iris/query.fvecs" </dev/null
	expect_err_has 1 "vec-query: s/shard1.vec: " \
		"$u: shard 1 of 3 failed on this machine (exit status 1)"
	assert_eq "$(grep -c 'failed on' <<<"$stderr")" 1
	assert_eq "$output" ""
	cp keep.vec s/shard1.vec
	# queries of another dimension: every search says so
	run --separate-stderr shard_query -n 3 -d s "$Q" </dev/null
	expect_err_has 1 "vec-query: stdin: vector 1: dimension 64, expected 4"
	grep -Eq "^$u: shard [0-2] of 3 failed on this machine \(exit status 1\)$" <<<"$stderr"
	assert_eq "$output" ""
	run --separate-stderr shard_query -n 3 -d s "$DATA/iris/query.fvecs" </dev/null
	expect_ok
	assert_eq "$(wc -l <<<"$output")" 150
}

# ---- over ssh, between two hosts --------------------------------------------

@test "over ssh, shared files: shards built on both hosts (-S), searched from a host file, as one index" {
	need_net
	where_bin
	run --separate-stderr in_client env VEC_BIN="$NET/bin" "$SCRIPTS/vec-shard-build" \
		--ssh "ssh -F $NET/ssh_config" -S 10.231.1.2,10.231.2.2 -n 4 -d s "$B" -- -t flat </dev/null
	expect_ok
	ran vec-build 10.231.1.2 10.231.2.2
	assert_eq "$(grep -c '^vec-build ' "$NET/where.log")" 4
	count_sum s 1697
	printf '# the two test hosts\n10.231.1.2\n\n10.231.2.2  # b\n' >hosts.txt
	: >"$NET/where.log"
	run --separate-stderr in_client env VEC_BIN="$NET/bin" "$SCRIPTS/vec-shard-query" \
		--ssh "ssh -F $NET/ssh_config" --sshloginfile hosts.txt -n 4 -d s -k 10 "$Q" </dev/null
	expect_ok
	printf '%s\n' "$output" >sharded.tsv
	# four searches on the hosts, the merge here
	assert_eq "$(grep -c '^vec-query 10\.231\.[12]\.2$' "$NET/where.log")" 4
	assert_eq "$(grep -c '^vec-query local$' "$NET/where.log")" 1
	ran vec-query 10.231.1.2 10.231.2.2 local
	one_index one.vec "$B"
	vec_query -k 10 one.vec "$Q" >one.tsv
	assert_same sharded.tsv one.tsv
	# a host where nothing answers: its shards' failures name it
	run --separate-stderr in_client env VEC_BIN="$NET/bin" "$SCRIPTS/vec-shard-query" \
		--ssh "ssh -F $NET/ssh_config" -S 10.231.1.2,10.231.1.1 -n 4 -d s "$Q" </dev/null
	assert_eq "$status" 1
	grep -Eq '^vec-shard-query: shard [0-3] of 4 failed on 10\.231\.1\.1 \(exit status 255\)$' <<<"$stderr" || { _show; false; }
	[[ "$stderr" != *"failed on 10.231.1.2"* ]] || { _show; false; }
	assert_eq "$output" ""
}

@test "over ssh, nothing shared (--transfer): inputs sent, shards returned, searched where sent; hosts keep nothing" {
	need_net
	command -v rsync >/dev/null || skip "rsync is not installed (Debian: rsync); parallel's --transferfile and --return use it"
	where_bin
	remote_tmp >"$NET/remote-before"
	cd "$HERE"
	cp "$B" base.fvecs
	cp "$Q" query.fvecs
	# the .3 hosts do not see this directory
	run in_client ssh -F "$NET/ssh_config" 10.231.1.3 test -e "$HERE/base.fvecs" </dev/null
	assert_eq "$status" 1
	run in_client ssh -F "$NET/ssh_config" 10.231.1.2 test -e "$HERE/base.fvecs" </dev/null
	assert_eq "$status" 0
	run --separate-stderr in_client env VEC_BIN="$NET/bin" "$SCRIPTS/vec-shard-build" --transfer \
		--ssh "ssh -F $NET/ssh_config" -S 10.231.1.3,10.231.2.3 -n 4 -d shards base.fvecs -- -t flat </dev/null
	expect_ok
	ran vec-build 10.231.1.3 10.231.2.3
	# the same files as built here
	for i in 0 1 2 3; do
		vec_build -q -t flat --shard "$i/4" -o "here$i.vec" base.fvecs
		assert_same "shards/shard$i.vec" "here$i.vec"
	done
	: >"$NET/where.log"
	run --separate-stderr in_client env VEC_BIN="$NET/bin" "$SCRIPTS/vec-shard-query" --transfer \
		--ssh "ssh -F $NET/ssh_config" -S 10.231.1.3,10.231.2.3 -n 4 -d shards -k 10 query.fvecs </dev/null
	expect_ok
	printf '%s\n' "$output" >sharded.tsv
	ran vec-query 10.231.1.3 10.231.2.3 local
	one_index one.vec base.fvecs
	vec_query -k 10 one.vec query.fvecs >one.tsv
	assert_same sharded.tsv one.tsv
	# --cleanup: the hosts' work directories are gone
	assert_eq "$(comm -13 "$NET/remote-before" <(remote_tmp) | xargs)" ""
	rm -f "$NET/remote-before" *.vec *.tsv base.fvecs query.fvecs
	rm -rf shards
}
