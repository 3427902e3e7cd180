/* plot.h — `rein plot`: training curves of one or more runs as one SVG file.
 *
 *   rein plot RUN[=LABEL]... [-o OUT.svg] [--metric NAME]... [--group N] [--facet N]
 *             [--band minmax|std|none] [--smooth W] [--x step|time] [--title T]
 *
 * RUN is a run directory holding metrics.jsonl, or a .jsonl file written by the trainer (one
 * object a line: "kind", "step", "time" and flat numeric metrics).  Runs sharing a label are
 * averaged into one line with a band; --facet makes one column of panels per directory name.
 * The SVG (default plot.svg) is written to a temporary file in the same directory and renamed
 * into place, so a failed run never leaves a half-written or clobbered output.
 */
#ifndef REIN_PLOT_H
#define REIN_PLOT_H

/* The command's entry point; argv[0] is "plot" and argv is permuted by getopt_long.  Returns
 * the exit status: 0 written, 1 bad or missing input / cannot write (one "rein plot: error:"
 * line on stderr), 2 usage error.  Allocates nothing that outlives the call. */
int plot_main(int argc, char **argv);

#endif
