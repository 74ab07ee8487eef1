"""Hand-run benchmarks of stemnb against its peers (see bench/README.md); not part of the package."""
