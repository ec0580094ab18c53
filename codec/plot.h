/* plot.h — line charts of a training log (CSV) rendered to PNG, for `vqz-train plot`: one panel per
 * column against the step, with axes, tick labels and the column name drawn in a built-in bitmap font. */
#ifndef VQZ_CODEC_PLOT_H
#define VQZ_CODEC_PLOT_H

#include "common/status.h"

/* Read csv_path (a header row of column names, then rows of numbers; empty cells and "nan" are gaps) and
 * write png_path (atomically) with one panel per requested column, stacked in a grid of two columns,
 * each plotting that column against the column named "step". columns may be NULL (n_columns 0) to plot
 * every column but "step" and a few bookkeeping ones ("time_s", "lr"). Rows whose cell is empty are skipped
 * for that panel, so sparse columns (a validation metric logged every N steps) plot as their own line.
 * Errors: VQZ_ERR_IO, VQZ_ERR_FORMAT naming the line and column, VQZ_ERR_NOT_FOUND for an unknown column. */
vqz_status vqz_plot_log(const char *csv_path, const char *png_path, const char *const *columns, int n_columns);

#endif
