"""Paper outputs from the workflow's evaluations: tables (CSV, Markdown, LaTeX), paired tests, figures, the
threshold-only reference method and the report's environment and wall-time tables. Never imports snakemake."""
