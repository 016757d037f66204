# stats.awk: the helpers bench/table.awk, http-table.awk and delay-table.awk share;
# load it first: awk -f bench/stats.awk -f bench/table.awk RAW
# Runs are collected per key with add(key, value), then summarised by stat().

# F[key] = value for the "key=value" fields of this record (after $1)
function fields(   i, eq) {
    delete F
    for (i = 2; i <= NF; i++) {
        eq = index($i, "=")
        if (eq) F[substr($i, 1, eq - 1)] = substr($i, eq + 1)
    }
}

function val(k) { return (k in F) ? F[k] : "" }

# median / min / max of list L[key, 1..n]
function stat(key, what,   n, i, j, t, a) {
    n = N[key]
    if (!n) return ""
    for (i = 1; i <= n; i++) a[i] = L[key, i] + 0
    for (i = 2; i <= n; i++) {                   # insertion sort, n is small
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    if (what == "min") return a[1]
    if (what == "max") return a[n]
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function add(key, v) { if (v == "" || v == "NA") return; L[key, ++N[key]] = v }

