"""Networks over a whole data set: a row per image (answer, residual ratios, metrics) in resumable Parquet."""
