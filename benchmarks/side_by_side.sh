# Sourced by the *_step.sh scripts. `side_by_side ROUNDS` runs the caller's `tessera_step`
# and `torch_step` functions alternately ROUNDS times (so machine load hits both alike),
# echoes each JSON line, then prints the ratio of the median samples/s and of the median
# peak RSS (tessera / pytorch).
side_by_side() {
  local t=() p=() tm=() pm=() a b field
  field() { echo "$1" | sed -E "s/.*\"$2\": ([0-9.]+).*/\\1/"; }
  for _ in $(seq "$1"); do
    a=$(tessera_step); b=$(torch_step)
    echo "$a"; echo "$b"
    t+=("$(field "$a" samples_per_s)"); p+=("$(field "$b" samples_per_s)")
    tm+=("$(field "$a" peak_rss_mib)"); pm+=("$(field "$b" peak_rss_mib)")
  done
  python3 - "${t[*]}" "${p[*]}" "${tm[*]}" "${pm[*]}" <<'PY'
import statistics, sys
t, p, tm, pm = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
mt, mp = statistics.median(t), statistics.median(p)
print(f"tessera median {mt:.2f} samples/s, pytorch median {mp:.2f} samples/s, ratio tessera/pytorch {mt/mp:.2f}")
rt, rp = statistics.median(tm), statistics.median(pm)
print(f"peak RSS of the process: tessera {rt:.0f} MiB, pytorch {rp:.0f} MiB, ratio {rt/rp:.2f}")
PY
}
