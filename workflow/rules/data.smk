# Stage 1: the cohort. The built-in synthetic cohort, the user's own scans from a case sheet, or a real dataset
# (COCA, or a folder cohort) fetched or found, verified and imported into the same case sheet.

if config["dataset"]["source"] == "synthetic":

    rule synthesize_cohort:
        input:
            code=package_code("synth", "scoring"),
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

elif config["dataset"]["source"] == "case_sheet":

    rule import_case_sheet:
        input:
            sheet=config["dataset"].get("case_sheet", ""),
            code=package_code("data"),
        output:
            cases="results/data/{dataset}/cases.tsv",
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

else:

    rule fetch_dataset:
        # Downloads dataset.download into the data root (resumable, sha256-verified, unpacked safely) and checks
        # that the importer's files are there; without downloads it only checks (COCA: says what to fetch).
        # The downloaded data is not a declared output, so Snakemake never deletes it.
        output:
            manifest="results/data/{dataset}/download.json",
        params:
            files=[[d.get("filename"), d.get("sha256")] for d in config["dataset"].get("download", [])],
            root=str(data_root(config["dataset"])),
        log:
            "logs/fetch_dataset/{dataset}.log",
        benchmark:
            "benchmarks/fetch_dataset/{dataset}.tsv"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=24 * 60,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/fetch_dataset.py"

    rule import_dataset:
        input:
            manifest="results/data/{dataset}/download.json",
            code=package_code("datasets", "io"),
        output:
            cases="results/data/{dataset}/cases.tsv",
            images=directory("results/data/{dataset}/images"),
            labels=directory("results/data/{dataset}/labels"),
            summary="results/data/{dataset}/import_summary.json",
            log_txt="results/data/{dataset}/import_log.txt",
        params:
            dataset={k: v for k, v in config["dataset"].items() if k in ("source", "root", "coca", "folder")},
        log:
            "logs/import_dataset/{dataset}.log",
        benchmark:
            "benchmarks/import_dataset/{dataset}.tsv"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=12 * 60,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/import_dataset.py"
