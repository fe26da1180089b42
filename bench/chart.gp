# The chart of bench/harness.sh: ingest throughput against workers, one line
# per batch size, with the COPY ceiling and the naive baseline as horizontal
# lines.  harness.sh sets, with gnuplot -e:
#   datafile     tab-separated: workers, then one column per batch size,
#                with a header line ("workers", "batch N", ...)
#   outfile      the PNG to write
#   ceiling      workflows/s of the COPY ceiling
#   naive        workflows/s of the naive baseline
#   nbatches     number of batch-size columns
#   def_workers  workers of patternd's default settings (0: not marked)
#   def_wps      workflows/s of the default-settings run at the full count
#   ymax         top of the y axis (above the ceiling and every point)
#   subtitle     records, tenants, PostgreSQL, machine, date

# pngcairo draws smoother lines; png (libgd) is the fallback.
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1100,720 enhanced font "sans,11"
} else {
    set terminal png size 1100,720 enhanced
}
set encoding utf8
set output outfile

set title "patternd ingest throughput vs workers and batch size\n" . subtitle noenhanced
set xlabel "workers (one connection each)"
set ylabel "workflows/s (records / wall time)"
set logscale x 2
set xrange [0.8:10]
set xtics (1, 2, 4, 8)
set yrange [0:ymax]
set format y "%.0f"
set grid ytics lc rgb "#dddddd"
set key outside below center horizontal maxrows 1 box
set bmargin 6
set datafile separator "\t"

set arrow 1 from graph 0, first ceiling to graph 1, first ceiling nohead lw 2 dt 2 lc rgb "#c00000" front
set label 1 sprintf("ceiling: COPY of the occurrence rows, %.0f /s", ceiling) at graph 0.02, first ceiling offset 0, 0.8 tc rgb "#c00000" front
set arrow 2 from graph 0, first naive to graph 1, first naive nohead lw 2 dt 3 lc rgb "#555555" front
set label 2 sprintf("naive: one transaction per record, %.0f /s", naive) at graph 0.02, first naive offset 0, 0.8 tc rgb "#555555" front
set label 3 "60% of ceiling" at graph 0.98, first 0.6 * ceiling right offset 0, 0.8 tc rgb "#c08080" front
set arrow 3 from graph 0, first 0.6 * ceiling to graph 1, first 0.6 * ceiling nohead lw 1 dt 4 lc rgb "#c08080" back

plot for [i = 2:nbatches + 1] datafile using 1:i with linespoints lw 2 pt 7 ps 1.2 title columnheader(i), \
     "+" using (def_workers):(def_wps) every ::0::0 with points pt 6 ps 3 lw 2 lc rgb "black" \
         title "default settings, full count"
