"""Numbers about a network and its data: residual statistics, costs, data-set probes, lesions, error, map metrics."""
