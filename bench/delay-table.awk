# delay-table.awk: bench/delay.sh's raw.txt -> its markdown table, medians
# over rounds. Load bench/stats.awk first; -v delay=MS gives the ceiling.
$1 == "run" || $1 == "fail" {
    fields()
    g = val("conns") SUBSEP val("variant")
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
}
$1 == "fail" { fails[g]++ }
$1 == "run" {
    runs[g]++
    add(g SUBSEP "rps", val("rps")); add(g SUBSEP "cpu", val("cpu_us_per_req"))
    add(g SUBSEP "pct", val("srv_cpu_pct")); add(g SUBSEP "csw", val("csw_per_req"))
    add(g SUBSEP "p50", val("p50_us")); add(g SUBSEP "p99", val("p99_us"))
    add(g SUBSEP "pss", val("pss_per_conn")); add(g SUBSEP "tasks", val("tasks"))
    bad[g] += val("failed") + val("errors")
}
END {
    print "| conns | backend:model | runs | req/s | of the ceiling | server CPU µs/req | server CPU % | ctx switches/req | p50 ms | p99 ms | Pss bytes/conn (tree ÷ conns) | tasks | failed+errors | failed runs |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (k = 1; k <= ng; k++) {
        g = order[k]; split(g, p, SUBSEP)
        ceil = p[1] * 1000 / delay
        printf "| %s | %s | %d | %.0f | %.2f | %.2f | %.0f | %.3f | %.1f | %.1f | %.0f | %d | %d | %d |\n",
            p[1], p[2], runs[g], stat(g SUBSEP "rps"), stat(g SUBSEP "rps") / ceil,
            stat(g SUBSEP "cpu"), stat(g SUBSEP "pct"), stat(g SUBSEP "csw"),
            stat(g SUBSEP "p50") / 1000, stat(g SUBSEP "p99") / 1000, stat(g SUBSEP "pss"),
            stat(g SUBSEP "tasks"), bad[g], fails[g]
    }
}
