# http-table.awk: raw.txt of bench/http.sh -> markdown tables (medians, min-max).
#   awk -f bench/stats.awk -f bench/http-table.awk bench/results/http-<stamp>/raw.txt
# Input: "run key=value ..." lines (one per measured run) and "fail ..." lines.
# "vs raw-epoll" = the median of the per-round ratios (each run's req per
# server core-second divided by that of the raw-epoll run of the same round
# and test: a paired figure, which the host's drift between rounds moves
# less than a ratio of medians), min-max in brackets; the ratio of the two
# medians where no round has both. The same for nginx.
# Runs with kernel_pct (SPLIT=1) add a third table: the measured run's CPU
# per request, split into user space and kernel by that share.

# "median [min–max]" with printf format fmt; "-" when there is nothing
function mmm(key, fmt) {
    if (!N[key]) return "-"
    if (N[key] == 1) return sprintf(fmt, stat(key, "med"))
    return sprintf(fmt " [" fmt "–" fmt "]", stat(key, "med"), stat(key, "min"), stat(key, "max"))
}
function med(key, fmt) { return N[key] ? sprintf(fmt, stat(key, "med")) : "-" }
function max(key, fmt) { return N[key] ? sprintf(fmt, stat(key, "max")) : "-" }
function table(title, cols, align) { print "### " title; print ""; print cols; print align }
function clean(s) { gsub(/_/, " ", s); gsub(/\|/, "/", s); return s }  # a reason, for a table cell

# rate-R: a few requests of the last milliseconds may still wait for a
# connection when the run ends; over 1 % of those sent means the rate was
# not held
function behind(g) { return unsent[g] > 0.01 * sent[g] }

# per-core of group g (test, server) against server ref, as above
function ratio(g, ref,   t, key) {
    key = g SUBSEP "ratio_" ref
    if (N[key]) return mmm(key, "%.2f")
    t = substr(g, 1, index(g, SUBSEP) - 1)
    if (!N[g, "core"] || !N[t SUBSEP ref SUBSEP "core"]) return "-"
    return sprintf("%.2f", stat(g SUBSEP "core", "med") / stat(t SUBSEP ref SUBSEP "core", "med"))
}

$1 == "run" || $1 == "fail" {
    fields()
    if (val("test") == "all") {                  # the server did not start
        nostart[val("server")]++
        next
    }
    g = val("test") SUBSEP val("server")
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
    if ($1 == "fail") { fails[g]++; why[g] = val("reason"); next }
    runs[g]++
    add(g SUBSEP "rps", val("rps"))
    add(g SUBSEP "srv", val("srv_cpu_pct"))
    add(g SUBSEP "core", val("req_per_core_s"))
    add(g SUBSEP "cli", val("cli_cpu_pct"))
    add(g SUBSEP "busy", val("core_busy_pct"))
    add(g SUBSEP "p50", val("p50_ms"))
    add(g SUBSEP "p99", val("p99_ms"))
    add(g SUBSEP "foreign", val("foreign_pct"))
    add(g SUBSEP "steal", val("steal_pct"))
    errs[g] += val("errors")
    non2xx[g] += val("non2xx")
    unsent[g] += val("unsent")                   # rate-R: due, never sent
    sent[g] += val("requests")
    percore[val("round"), val("test"), val("server")] = val("req_per_core_s")
    if (val("kernel_pct") != "" && val("req_per_core_s") > 0) {   # SPLIT=1
        ns = 1e9 / val("req_per_core_s")
        add(g SUBSEP "ns", ns)
        add(g SUBSEP "kpct", val("kernel_pct"))
        add(g SUBSEP "uns", ns * (100 - val("kernel_pct")) / 100)
        add(g SUBSEP "kns", ns * val("kernel_pct") / 100)
        split_runs++
    }
}

END {
    # per-round ratios against the peers
    for (k in percore) {
        split(k, p, SUBSEP)                      # round, test, server
        split("raw-epoll nginx", rs, " ")
        for (i = 1; i <= 2; i++) {
            rk = p[1] SUBSEP p[2] SUBSEP rs[i]
            if ((rk in percore) && percore[rk] > 0)
                add(p[2] SUBSEP p[3] SUBSEP "ratio_" rs[i], percore[k] / percore[rk])
        }
    }
    table("Throughput and cost", "| test | server | runs | req/s | server CPU % | req per server core-s | per-core vs raw-epoll | per-core vs nginx |",
        "|---|---|---:|---:|---:|---:|---:|---:|")
    for (k = 1; k <= ng; k++) {
        g = order[k]; split(g, p, SUBSEP)
        mark = (errs[g] + non2xx[g] > 0 || fails[g] > 0 || behind(g)) ? " ⚠" : ""
        if (mark) marked = 1
        printf "| %s | %s | %d | %s%s | %s | %s | %s | %s |\n", p[1], p[2], runs[g],
            mmm(g SUBSEP "rps", "%.0f"), mark, mmm(g SUBSEP "srv", "%.0f"),
            mmm(g SUBSEP "core", "%.0f"), ratio(g, "raw-epoll"), ratio(g, "nginx")
    }
    print ""
    table("Load, latency and noise", "| test | server | client CPU % | server core busy % | p50 ms | p99 ms | foreign CPU % (max) | steal % (max) | errors | non-2xx | failed runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (k = 1; k <= ng; k++) {
        g = order[k]; split(g, p, SUBSEP)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d%s |\n", p[1], p[2],
            med(g SUBSEP "cli", "%.0f"), med(g SUBSEP "busy", "%.0f"),
            med(g SUBSEP "p50", "%.2f"), med(g SUBSEP "p99", "%.2f"),
            max(g SUBSEP "foreign", "%.1f"), max(g SUBSEP "steal", "%.1f"),
            errs[g], non2xx[g], fails[g], fails[g] ? " (" clean(why[g]) ")" : ""
    }
    if (split_runs) {
        print ""
        table("Where the server's CPU goes (SPLIT=1)", "| test | server | server CPU ns per request | in user space, ns | in the kernel, ns | kernel share % |",
            "|---|---|---:|---:|---:|---:|")
        for (k = 1; k <= ng; k++) {
            g = order[k]; split(g, p, SUBSEP)
            if (!N[g, "kpct"]) continue
            printf "| %s | %s | %s | %s | %s | %s |\n", p[1], p[2], mmm(g SUBSEP "ns", "%.0f"),
                mmm(g SUBSEP "uns", "%.0f"), mmm(g SUBSEP "kns", "%.0f"), mmm(g SUBSEP "kpct", "%.1f")
        }
        print ""
        print "ns per request = 1e9 ÷ req per server core-s of the measured run, split by the share of"
        print "perf's cpu-clock samples of the server's threads that fell in the kernel, taken in a"
        print "second run of the same load right after it. Each column is a median of its own: the"
        print "user and kernel medians need not add up to the total's."
    }
    for (k = 1; k <= ng; k++) {
        g = order[k]
        if (!unsent[g]) continue
        split(g, p, SUBSEP)
        printf "\n%s %s: %d requests due (%.2f %% of those sent) still waited for a connection at the end%s.\n",
            p[1], p[2], unsent[g], 100 * unsent[g] / (sent[g] ? sent[g] : 1),
            (behind(g) ? ": the server did not hold the rate" : "")
    }
    for (s in nostart) printf "\n%s did not start in %d round(s); see raw.txt.\n", s, nostart[s]
    print ""
    if (marked) { # the legend only where a row carries the mark
        print "⚠: some run of the row had socket errors, non-2xx responses or no result (second table),"
        print "or (rate-R) over 1 % of the requests due were never sent."
    }
    print "Medians over rounds, [min–max] in brackets; per-core = requests ÷ server CPU seconds"
    print "(for rate-R, where every server gets the same R requests/s, its inverse is the server's"
    print "CPU time per request)."
}
