# Sourced by bench/run: one function per agent that writes its configuration for
# one run and prints the command that starts it. The settings they use (RS_*, SNG_*,
# DRAIN_KIND, DRAIN_QUERY) and the reasons for each are in bench/run's header.
#
# conf_AGENT DIR INPUT HTTP_PORT DRAIN_PORTS…  -> writes DIR/conf, prints the command
#   INPUT: file:PATH_OR_GLOB, tcp:PORT, udp:PORT or envoy:PORT (logtrain only)
conf_logtrain() {
  local dir=$1 input=$2 hp=$3; shift 3
  local drains=""
  for p in "$@"; do
    case $DRAIN_KIND in
      http) drains="$drains\"http://127.0.0.1:$p/ingest$DRAIN_QUERY\", " ;;
      *) drains="$drains\"syslog+tcp://127.0.0.1:$p$DRAIN_QUERY\", " ;;
    esac
  done
  {
    echo "listen_address: 127.0.0.1"
    echo "http_port: $hp"
    echo "checkpoint_path: $dir/checkpoints.json"
    # Each run's own disk buffers (the default is /var/lib/logtrain/buffers, shared by runs).
    echo "drain_buffer_path: $dir/buffers"
    echo "tail_max_backlog_bytes: 0"
    [ -n "${STALLED_TAIL:-}" ] && echo "tail_access: open"
    case $input in
      file:*) echo "kubernetes: true"; echo "kubernetes_log_path: $(dirname "${input#file:}")" ;;
      tcp:*) echo "syslog_tcp: true"; echo "syslog_tcp_port: ${input#tcp:}" ;;
      udp:*) echo "syslog_udp: true"; echo "syslog_udp_port: ${input#udp:}" ;;
      envoy:*) echo "envoy: true"; echo "envoy_port: ${input#envoy:}" ;;
    esac
    echo "routes:"
    echo "  - hostname: bench.default"
    echo "    drains: [${drains%, }]"
  } >"$dir/conf.yaml"
  echo "env RUST_LOG=warn $LT --config $dir/conf.yaml"
}
conf_rsyslog() {
  local dir=$1 input=$2; shift 3
  {
    echo "global(workDirectory=\"$dir\" maxMessageSize=\"$RS_MAXMSG\")"
    echo 'main_queue(queue.type="Direct")'
    echo "ruleset(name=\"fwd\" queue.type=\"FixedArray\" queue.size=\"$RS_QUEUE\" queue.dequeueBatchSize=\"$RS_BATCH\") {"
    for p in "$@"; do
      echo "  action(type=\"omfwd\" target=\"127.0.0.1\" port=\"$p\" protocol=\"tcp\" TCP_Framing=\"$RS_FRAMING\" template=\"RSYSLOG_SyslogProtocol23Format\")"
    done
    echo "}"
    case $input in
      file:*) echo "module(load=\"imfile\" mode=\"$RS_IMFILE_MODE\")"
              echo "input(type=\"imfile\" file=\"${input#file:}\" tag=\"bench\" ruleset=\"fwd\" maxSubmitAtOnce=\"$RS_SUBMIT\")" ;;
      tcp:*) echo 'module(load="imtcp" maxSessions="100")'
             echo "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"${input#tcp:}\" ruleset=\"fwd\")" ;;
      udp:*) echo "module(load=\"imudp\" threads=\"$RS_UDP_THREADS\" batchSize=\"$RS_UDP_BATCH\")"
             echo "input(type=\"imudp\" address=\"127.0.0.1\" port=\"${input#udp:}\" ruleset=\"fwd\" rcvbufSize=\"8m\")"
             # Its own counters (a full queue discards what imudp cannot wait to enqueue), each second.
             echo "module(load=\"impstats\" interval=\"1\" format=\"json\" log.syslog=\"off\" log.file=\"$dir/impstats.json\")" ;;
    esac
  } >"$dir/rsyslog.conf"
  echo "rsyslogd -n -f $dir/rsyslog.conf -i $dir/rsyslog.pid"
}
conf_syslog-ng() {
  local dir=$1 input=$2; shift 3
  {
    echo '@version: 3.38'
    echo "options { use-dns(no); use-fqdn(no); keep-hostname(yes); chain-hostnames(no); stats-freq(0); log-fifo-size(100000); flush-lines($SNG_FLUSH); time-reopen(1); };"
    case $input in
      file:*'*'*) echo "source s { wildcard-file(base-dir(\"$(dirname "${input#file:}")\") filename-pattern(\"*.log\") max-files(1000) flags(no-parse) follow-freq($SNG_FOLLOW) log-iw-size(100000) log-fetch-limit($SNG_FETCH)); };" ;;
      file:*) echo "source s { file(\"${input#file:}\" flags(no-parse) follow-freq($SNG_FOLLOW) log-iw-size(100000) log-fetch-limit($SNG_FETCH)); };" ;;
      tcp:*) echo "source s { syslog(ip(\"127.0.0.1\") port(${input#tcp:}) transport(\"tcp\") max-connections(100) log-iw-size(100000) log-fetch-limit($SNG_TCP_FETCH)); };" ;;
      udp:*) echo "source s { syslog(ip(\"127.0.0.1\") port(${input#udp:}) transport(\"udp\") so-rcvbuf(8388608) log-iw-size($SNG_UDP_IW) log-fetch-limit(1000)); };" ;;
    esac
    local i=0
    for p in "$@"; do
      echo "destination d$i { syslog(\"127.0.0.1\" port($p) transport(\"tcp\")); };"
      echo "log { source(s); destination(d$i); flags(flow-control); };"
      i=$((i + 1))
    done
  } >"$dir/syslog-ng.conf"
  echo "env LD_LIBRARY_PATH=$SNG_ROOT/lib/x86_64-linux-gnu:$SNG_ROOT/usr/lib/x86_64-linux-gnu:$SNG_ROOT/usr/lib/syslog-ng $SNG_ROOT/usr/sbin/syslog-ng -F --no-caps -f $dir/syslog-ng.conf --module-path $SNG_ROOT/usr/lib/syslog-ng/3.38 --persist-file $dir/sng.persist --pidfile $dir/sng.pid --control $dir/sng.ctl"
}
