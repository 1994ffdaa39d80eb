"""The shipped catalog: AI gateway model definitions and Duo features, as YAML package data."""
