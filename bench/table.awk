# table.awk: raw.txt of bench/run.sh -> markdown tables (medians, min-max).
#   awk -f bench/stats.awk -f bench/table.awk bench/results/<stamp>/raw.txt
# Input: "run key=value ..." lines (one per measured run) and "fail ..." lines.
# Ratios: "vs raw-epoll" = median CPU/msg of the row / median CPU/msg of
# raw-epoll at the same size; in brackets the min-max of the per-round ratios
# (each run divided by the raw-epoll run of the same round and size, which ran
# a few seconds earlier or later).

# "median [min-max]" with printf format fmt
function mmm(key, fmt) {
    if (!N[key]) return "-"
    if (N[key] == 1) return sprintf(fmt, stat(key, "med"))
    return sprintf(fmt " [" fmt "–" fmt "]", stat(key, "med"), stat(key, "min"), stat(key, "max"))
}

function ratio(g, ref,   s, r, k, i, key) {
    s = substr(g, index(g, SUBSEP) + 1)
    if (!N[g, "cpu"] || !N[ref SUBSEP s, "cpu"]) return "-"
    r = sprintf("%.2f", stat(g SUBSEP "cpu", "med") / stat(ref SUBSEP s SUBSEP "cpu", "med"))
    key = g SUBSEP "ratio_" ref
    if (N[key] > 1) r = r sprintf(" [%.2f–%.2f]", stat(key, "min"), stat(key, "max"))
    return r
}

$1 == "run" || $1 == "fail" {
    fields()
    g = val("server") SUBSEP val("size")
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
    if (!(val("size") in sizeseen)) { sizeseen[val("size")] = 1; sizes[++nsizes] = val("size") }
    if ($1 == "fail") { fails[g]++; next }
    rounds[val("round")] = 1
    add(g SUBSEP "mps", val("msg_per_s"))
    add(g SUBSEP "cpu", val("cpu_us_per_msg"))
    add(g SUBSEP "sys", val("sys_per_msg"))
    add(g SUBSEP "wake", val("wake_per_msg"))
    add(g SUBSEP "csw", val("csw_per_msg"))
    add(g SUBSEP "srv", val("srv_cpu_pct"))
    add(g SUBSEP "cli", val("cli_cpu_pct"))
    add(g SUBSEP "core", val("core_busy_pct"))
    add(g SUBSEP "p50", val("p50_us"))
    add(g SUBSEP "p99", val("p99_us"))
    add(g SUBSEP "foreign", val("foreign_pct"))
    add(g SUBSEP "steal", val("steal_pct"))
    errs[g] += val("errors")
    cpu[val("round"), g] = val("cpu_us_per_msg")
}

END {
    # per-round ratios against the peers
    for (k in cpu) {
        split(k, p, SUBSEP)                       # round, server, size
        split("raw-epoll raw-uring", rs, " ")
        for (i = 1; i <= 2; i++) {
            rk = p[1] SUBSEP rs[i] SUBSEP p[3]
            if ((rk in cpu) && cpu[rk] > 0)
                add(p[2] SUBSEP p[3] SUBSEP "ratio_" rs[i], cpu[k] / cpu[rk])
        }
    }
    nr = 0
    for (r in rounds) nr++
    printf "## Results: medians over %d rounds, [min–max] across rounds\n\n", nr
    print "### Cost per echoed message"
    print ""
    print "| server | size B | msg/s | server CPU µs/msg | CPU/msg vs raw-epoll | CPU/msg vs raw-uring | syscalls/msg | wakeups/msg | ctx switches/msg |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (si = 1; si <= nsizes; si++)
        for (i = 1; i <= ng; i++) {
            g = order[i]
            split(g, p, SUBSEP)
            if (p[2] != sizes[si]) continue
            vu = (p[1] ~ /uring/) ? ratio(g, "raw-uring") : "-"
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p[1], p[2],
                mmm(g SUBSEP "mps", "%.0f"), mmm(g SUBSEP "cpu", "%.3f"), ratio(g, "raw-epoll"), vu,
                mmm(g SUBSEP "sys", "%.3f"), mmm(g SUBSEP "wake", "%.3f"), mmm(g SUBSEP "csw", "%.4f")
        }
    print ""
    print "### Load, latency and noise"
    print ""
    print "| server | size B | runs | server CPU % | client CPU % | server core busy % | p50 µs | p99 µs | foreign CPU % (max) | steal % (max) | errors | failed runs |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (si = 1; si <= nsizes; si++)
        for (i = 1; i <= ng; i++) {
            g = order[i]
            split(g, p, SUBSEP)
            if (p[2] != sizes[si]) continue
            printf "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", p[1], p[2],
                N[g SUBSEP "cpu"], mmm(g SUBSEP "srv", "%.0f"), mmm(g SUBSEP "cli", "%.0f"),
                mmm(g SUBSEP "core", "%.0f"), mmm(g SUBSEP "p50", "%.0f"), mmm(g SUBSEP "p99", "%.0f"),
                N[g SUBSEP "foreign"] ? sprintf("%.0f", stat(g SUBSEP "foreign", "max")) : "-",
                N[g SUBSEP "steal"] ? sprintf("%.1f", stat(g SUBSEP "steal", "max")) : "-",
                errs[g], fails[g]
        }
    print ""
    print "syscalls/msg and wakeups/msg come from vx-echo's --stats counters, which cover the"
    print "whole run (connect, warm-up, window, close): total ÷ (bytes_in ÷ size). The raw peers"
    print "have no counters (-). CPU, context switches and msg/s cover the measured window only."
}
