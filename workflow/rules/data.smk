# Stage 1: the cohort. The built-in synthetic cohort, the user's own scans from a case sheet, or a real dataset
# (COCA, or a folder cohort) fetched or found, verified and imported into the same case sheet.

# Per-artery Agatston in the evaluation where the reference labels arteries (1 LM, 2 LAD, 3 LCX, 4 RCA): the
# synthetic cohort and COCA do; a folder or case sheet cohort does when it says so (evaluate.per_artery: true).
config.setdefault("evaluate", {}).setdefault("per_artery", config["dataset"]["source"] in ("synthetic", "coca"))

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
            "logs/benchmarks/synthesize_cohort/{dataset}.tsv"
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
        output:
            cases="results/data/{dataset}/cases.tsv",
        params:
            version=STAGE_VERSIONS["import_case_sheet"],
        log:
            "logs/import_case_sheet/{dataset}.log",
        benchmark:
            "logs/benchmarks/import_case_sheet/{dataset}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/import_case_sheet.py"

else:
    if config["dataset"]["source"] == "folder" and not (config["dataset"].get("folder") or {}).get("images"):
        raise ValueError("config: dataset.source is folder but dataset.folder.images and .labels are not set")
    sys.path.insert(0, str(REPO))
    from s2cac.datasets.run import data_root

    rule fetch_dataset:
        # Downloads dataset.download into the data root (resumable, sha256-verified, unpacked safely) and checks
        # that the importer's files are there; without downloads it only checks (COCA: says what to fetch).
        # The downloaded data is not a declared output, so Snakemake never deletes it.
        output:
            manifest="results/data/{dataset}/download.json",
        params:
            files=[[d.get("filename"), d.get("sha256")] for d in config["dataset"].get("download", [])],
            root=str(data_root(config["dataset"])),
            version=STAGE_VERSIONS["fetch_dataset"],
        log:
            "logs/fetch_dataset/{dataset}.log",
        benchmark:
            "logs/benchmarks/fetch_dataset/{dataset}.tsv"
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
        output:
            cases="results/data/{dataset}/cases.tsv",
            images=directory("results/data/{dataset}/images"),
            labels=directory("results/data/{dataset}/labels"),
            summary="results/data/{dataset}/import_summary.json",
            log_txt="results/data/{dataset}/import_log.txt",
        params:
            dataset={k: v for k, v in config["dataset"].items() if k in ("source", "root", "coca", "folder")},
            version=STAGE_VERSIONS["import_dataset"],
        log:
            "logs/import_dataset/{dataset}.log",
        benchmark:
            "logs/benchmarks/import_dataset/{dataset}.tsv"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=12 * 60,
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/import_dataset.py"
