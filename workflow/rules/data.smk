# Stage 1: the cohort. Either the built-in synthetic cohort or the user's own scans from a case sheet.

if config["dataset"]["source"] == "synthetic":

    rule synthesize_cohort:
        output:
            cases="results/data/{dataset}/cases.tsv",
            images=directory("results/data/{dataset}/images"),
            labels=directory("results/data/{dataset}/labels"),
            overview=report(
                "results/data/{dataset}/overview.png",
                caption="../report/overview.rst",
                category="Data",
            ),
            baseline="results/data/{dataset}/threshold_baseline.tsv",
        params:
            synthetic=config["dataset"]["synthetic"],
            version=STAGE_VERSIONS["synthesize_cohort"],
        log:
            "logs/synthesize_cohort/{dataset}.log",
        benchmark:
            "benchmarks/synthesize_cohort/{dataset}.tsv"
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/synthesize_cohort.py"

else:

    rule import_case_sheet:
        input:
            sheet=config["dataset"].get("case_sheet", ""),
        output:
            cases="results/data/{dataset}/cases.tsv",
        params:
            version=STAGE_VERSIONS["import_case_sheet"],
        log:
            "logs/import_case_sheet/{dataset}.log",
        benchmark:
            "benchmarks/import_case_sheet/{dataset}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/import_case_sheet.py"
