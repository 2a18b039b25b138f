"""Multi-stage workflows built on the bundles: cross-validation and the paper's ablations."""
