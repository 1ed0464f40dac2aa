# Stage 7: the paper's results from data (results/paper/{dataset}/): the threshold-only reference method,
# tables (CSV, Markdown, LaTeX), figures (PNG, PDF), the environment and wall-time tables for the report, and one
# summary per experiment (the targets `paper` and `experiment_<name>` are in the Snakefile). What is compared
# comes from the `paper:` section of the config (config/README.md); s2cac.paper builds everything, this file
# only wires it.

if config["dataset"]["source"] == "synthetic":

    rule heart_regions:
        # The synthetic cohort's heart regions (the generator's own, redrawn from its seed: the threshold-only
        # method's "heart region"); real cohorts name theirs in an optional heart_region column of the case sheet.
        input:
            cases="results/data/{dataset}/cases.tsv",
        output:
            directory("results/data/{dataset}/heart_regions"),
        params:
            synthetic=config["dataset"]["synthetic"],
            version=STAGE_VERSIONS["heart_regions"],
        log:
            "logs/heart_regions/{dataset}.log",
        benchmark:
            "logs/benchmarks/heart_regions/{dataset}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/heart_regions.py"


rule predict_threshold:
    # The threshold-only reference method on the test cases: HU >= predict.threshold_hu inside the heart region
    # (the body where a case has no heart mask; regions.tsv says which). Evaluated by `evaluate` like a model.
    input:
        cases="results/data/{dataset}/cases.tsv",
        split="results/splits/{dataset}/seed{seed}/fold{fold}/labeled{ratio}.json",
        regions=(["results/data/{dataset}/heart_regions"] if config["dataset"]["source"] == "synthetic" else []),
    output:
        directory(f"results/predict/{{dataset}}/{THRESHOLD_EXPERIMENT}/labeled{{ratio}}/fold{{fold}}/seed{{seed}}"),
    params:
        threshold_hu=config["predict"]["threshold_hu"],
        version=STAGE_VERSIONS["predict_threshold"],
    log:
        f"logs/predict_threshold/{{dataset}}/labeled{{ratio}}/fold{{fold}}/seed{{seed}}.log",
    benchmark:
        f"logs/benchmarks/predict_threshold/{{dataset}}/labeled{{ratio}}/fold{{fold}}/seed{{seed}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/predict_threshold.py"


if PAPER is not None:

    rule paper_tables:
        input:
            evaluations=paper_evaluations(),
            predictions=paper_predictions(),
        output:
            **{
                f"{t}_{e}": (report(f"{PAPER_DIR}/tables/{t}.{e}", caption="../report/paper_tables.rst",
                                    category="Paper", subcategory="Tables", labels={"table": t})
                             if e == "csv" else f"{PAPER_DIR}/tables/{t}.{e}")
                for t in PAPER_TABLES
                for e in ("csv", "md", "tex")
            },
            runs=f"{PAPER_DIR}/tables/runs.csv",
            headline=report(f"{PAPER_DIR}/tables/headline.txt", caption="../report/paper_headline.rst",
                            category="Paper", subcategory="Tables", labels={"table": "headline"}),
        params:
            plan=PAPER,
            version=STAGE_VERSIONS["paper_tables"],
        log:
            f"logs/paper_tables/{DATASET}.log",
        benchmark:
            f"logs/benchmarks/paper_tables/{DATASET}.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/paper_tables.py"

    rule paper_figures:
        input:
            evaluations=paper_evaluations(),
            predictions=paper_predictions(),
            models=paper_models(),
            cases=f"results/data/{DATASET}/cases.tsv",
        output:
            **{
                f"{f}_{e}": (report(f"{PAPER_DIR}/figures/{f}.{e}", caption=f"../report/paper_{f}.rst",
                                    category="Paper", subcategory="Figures", labels={"figure": f})
                             if e == "png" else f"{PAPER_DIR}/figures/{f}.{e}")
                for f in PAPER_FIGURES
                for e in ("png", "pdf")
            },
        params:
            plan=PAPER,
            version=STAGE_VERSIONS["paper_figures"],
        log:
            f"logs/paper_figures/{DATASET}.log",
        benchmark:
            f"logs/benchmarks/paper_figures/{DATASET}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/paper_figures.py"

    rule paper_environment:
        # The resolved config, software versions and wall time per stage (read from logs/benchmarks/ after every
        # evaluation, table and figure is done, so that their own stages are in it; jobs that re-run later update
        # it on the next run of this rule).
        input:
            evaluations=paper_evaluations(),
            tables=rules.paper_tables.output.runs,
            figures=rules.paper_figures.output,
        output:
            config=report(f"{PAPER_DIR}/config.yaml", caption="../report/paper_config.rst", category="Paper",
                          subcategory="Environment", labels={"file": "configuration"}),
            software=report(f"{PAPER_DIR}/software.csv", caption="../report/paper_software.rst", category="Paper",
                            subcategory="Environment", labels={"file": "software versions"}),
            walltime=report(f"{PAPER_DIR}/walltime.csv", caption="../report/paper_walltime.rst", category="Paper",
                            subcategory="Environment", labels={"file": "wall time per stage"}),
            walltime_md=f"{PAPER_DIR}/walltime.md",
        params:
            # the config is dumped from snakemake.config by the script, not held here: an execution setting
            # (device, threads) must not re-run anything
            cohort=PAPER["cohort"],
            version=STAGE_VERSIONS["paper_environment"],
        log:
            f"logs/paper_environment/{DATASET}.log",
        benchmark:
            f"logs/benchmarks/paper_environment/{DATASET}.tsv"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/paper_environment.py"

    rule experiment_table:
        # One experiment's own summary (every metric per labeled ratio): what `experiment_<name>` ends with.
        input:
            evaluations=lambda wc: paper_evaluations([wc.experiment]),
        output:
            csv="results/paper/{dataset}/experiments/{experiment}.csv",
            md="results/paper/{dataset}/experiments/{experiment}.md",
        params:
            plan=PAPER,
            version=STAGE_VERSIONS["experiment_table"],
        log:
            "logs/experiment_table/{dataset}/{experiment}.log",
        benchmark:
            "logs/benchmarks/experiment_table/{dataset}/{experiment}.tsv"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/experiment_table.py"
